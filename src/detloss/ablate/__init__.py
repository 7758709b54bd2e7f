"""``detloss ablate``: train small detectors with each loss and compare them on COCO metrics.

Needs the ``ablate`` extra (pycocotools, pillow, and the CLI's typer, rich and matplotlib).
"""
