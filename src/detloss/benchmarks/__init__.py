"""The ``detloss bench`` harness: a tool that times detloss's losses against their peers.

:mod:`~detloss.benchmarks.families` defines the losses and inputs, :mod:`~detloss.benchmarks.measure`
times them, :mod:`~detloss.benchmarks.output` prints, tabulates and plots the rows, and
:mod:`~detloss.benchmarks.cli` is the command. The library itself never imports this package.
"""
