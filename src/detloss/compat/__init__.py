"""Drop-in modules for code written against other frameworks: change one import, keep the numbers.

* :mod:`detloss.compat.torchvision` -- the losses and pairwise box-IoU functions of
  ``torchvision.ops``;
* :mod:`detloss.compat.fvcore` -- ``fvcore.nn``'s losses and detectron2's ``diou_loss`` /
  ``ciou_loss``;
* :mod:`detloss.compat.ultralytics` -- ``bbox_iou``, ``FocalLoss``, ``VarifocalLoss`` and
  ``DFLoss`` of ``ultralytics.utils``.

Each keeps the framework's names, signatures and defaults and only maps them onto detloss's own
functions: the conventions that differ are arguments of those functions. The table of framework
calls and detloss calls, and what is not identical, is in ``docs/conventions.md``. Import the
submodules by name; importing :mod:`detloss` does not import them.
"""
