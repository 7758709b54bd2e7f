"""detloss inside the user's ``torch.compile``: of a head with its losses and of a whole training
step, through AOTAutograd (forward and backward graphs), without recompiling when the number of
boxes changes; inductor's CPU code for the IoU losses. The catalogue checks each functional loss
compiled alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch._dynamo.testing import CompileCounterWithBackend
from torch._inductor import cpu_vec_isa
from torch._inductor.utils import run_and_get_code

import detloss
from tests.boxgen import random_boxes


class TinyHead(nn.Module):
    """Class logits and box deltas for ``n`` anchors from their features."""

    def __init__(self, features: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.cls = nn.Linear(features, classes)
        self.reg = nn.Linear(features, 4)
        self.coder = detloss.DeltaXYWHCoder(stds=(0.1, 0.1, 0.2, 0.2))
        self.focal = detloss.build_loss({"type": "FocalLoss", "loss_weight": 1.0})
        self.giou = detloss.build_loss({"type": "GIoULoss", "loss_weight": 2.0})

    def forward(
        self, x: Tensor, anchors: Tensor, labels: Tensor, gt: Tensor, positive: Tensor
    ) -> Tensor:
        num_pos = positive.sum().clamp_min(1).to(x.dtype)
        boxes = self.coder.decode(anchors, self.reg(x))
        loss_cls: Tensor = self.focal(self.cls(x), labels, avg_factor=num_pos)
        loss_box: Tensor = self.giou(boxes, gt, weight=positive.to(x.dtype), avg_factor=num_pos)
        smooth = detloss.smooth_l1_loss(
            self.reg(x), self.coder.encode(anchors, gt), 1 / 9, weight=positive[:, None].float()
        )
        return loss_cls + loss_box + smooth


def _batch(n: int, seed: int) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    anchors, gt = (b.float() for b in random_boxes(n, g))
    labels = torch.randint(0, 4, (n,), generator=g)  # 3 = background
    return torch.randn(n, 8, generator=g), anchors, labels, gt, labels < 3


@pytest.mark.parametrize("whole_step", [False, True], ids=["head", "training-step"])
def test_compiled_head_and_training_step_match_eager_without_recompiling(whole_step: bool) -> None:
    torch.manual_seed(0)
    head, reference = TinyHead(), TinyHead()
    reference.load_state_dict(head.state_dict())
    optimiser = torch.optim.SGD(head.parameters(), lr=0.1)
    reference_optimiser = torch.optim.SGD(reference.parameters(), lr=0.1)

    def step(module: TinyHead, opt: torch.optim.Optimizer, *batch: Tensor) -> Tensor:
        opt.zero_grad()
        loss: Tensor = module(*batch)
        loss.backward()
        opt.step()
        return loss.detach()

    counter = CompileCounterWithBackend("aot_eager")
    if whole_step:
        compiled_step = torch.compile(step, backend=counter, dynamic=True)

        def run(*batch: Tensor) -> Tensor:
            out: Tensor = compiled_step(head, optimiser, *batch)
            return out
    else:
        compiled_head = torch.compile(head, backend=counter, dynamic=True, fullgraph=True)

        def run(*batch: Tensor) -> Tensor:
            return step(compiled_head, optimiser, *batch)  # type: ignore[arg-type]

    frames = []
    for seed, n in enumerate((37, 53, 101)):
        batch = _batch(n, seed)
        torch.testing.assert_close(run(*batch), step(reference, reference_optimiser, *batch))
        frames.append(counter.frame_count)
    for p, q in zip(head.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    assert frames[0] > 0
    assert frames == [frames[0]] * 3, f"recompiled when the number of boxes changed: {frames}"


@pytest.mark.parametrize("as_tensor", [False, True])
def test_a_new_avg_factor_does_not_recompile(as_tensor: bool) -> None:
    counter = CompileCounterWithBackend("eager")
    loss = torch.compile(detloss.smooth_l1_loss, backend=counter, dynamic=True, fullgraph=True)
    pred, target = torch.randn(10, 4), torch.randn(10, 4)
    for factor in (3.0, 5.5, 7.0):
        avg_factor = torch.tensor(factor) if as_tensor else factor
        expected = detloss.smooth_l1_loss(pred, target, avg_factor=avg_factor)
        torch.testing.assert_close(loss(pred, target, avg_factor=avg_factor), expected)
    assert counter.frame_count == 1


@pytest.mark.skipif(not cpu_vec_isa.pick_vec_isa(), reason="inductor has no CPU vector ISA here")
@pytest.mark.parametrize("loss", [detloss.giou_loss, detloss.ciou_loss], ids=["giou", "ciou"])
def test_inductor_vectorises_the_iou_losses_forward_and_backward(
    loss: Callable[..., Tensor],
) -> None:
    # the IoU Function's forward is one fused CPU loop over the box pairs: scalar code there made
    # the compiled loss slower than the compiled autograd formula
    pred, target = (b.float() for b in random_boxes(64, torch.Generator().manual_seed(0)))
    pred.requires_grad_(True)
    compiled = torch.compile(loss, dynamic=True, fullgraph=True)

    def step() -> Tensor:
        out = compiled(pred, target)
        out.backward()
        return out.detach()

    out, (forward, backward) = run_and_get_code(step)
    torch.testing.assert_close(out, loss(pred, target))
    for code in (forward, backward):
        assert "at::vec::Vectorized<float>" in code
