"""Knowledge distillation by KL divergence: the definition, T^2 scaling, the detached teacher."""

from __future__ import annotations

import math

import pytest
import torch

import detloss


def _reference(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 times the class-wise mean of q_c (log q_c - log s_c), q and s the softened softmaxes."""
    rows = []
    for z, s in zip(student.tolist(), teacher.tolist(), strict=True):
        zs = [v / temperature for v in z]
        ss = [v / temperature for v in s]
        log_norm_z = math.log(sum(math.exp(v) for v in zs))
        norm_s = sum(math.exp(v) for v in ss)
        q = [math.exp(v) / norm_s for v in ss]
        terms = [qc * (math.log(qc) - (zc - log_norm_z)) for qc, zc in zip(q, zs, strict=True)]
        rows.append(temperature**2 * sum(terms) / len(terms))
    return torch.tensor(rows, dtype=torch.float64)


def _pair(seed: int):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(6, 5, generator=g, dtype=torch.float64) * 4,
        torch.randn(6, 5, generator=g, dtype=torch.float64) * 4,
    )


@pytest.mark.parametrize("temperature", [1.0, 2.0, 10.0])
def test_matches_definition(temperature: float) -> None:
    student, teacher = _pair(0)
    got = detloss.knowledge_distillation_kl_div_loss(
        student, teacher, temperature, reduction="none"
    )
    torch.testing.assert_close(got, _reference(student, teacher, temperature))


def test_hand_computed() -> None:
    # Equal logits: 0. Two classes, student uniform, teacher logits (T ln 3, 0) -> q = (3/4, 1/4):
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2), mean over the 2 classes, times T^2.
    zero = torch.zeros(1, 2)
    assert detloss.knowledge_distillation_kl_div_loss(zero, zero).item() == 0.0
    t = 10.0
    teacher = torch.tensor([[t * math.log(3), 0.0]], dtype=torch.float64)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    got = detloss.knowledge_distillation_kl_div_loss(zero.double(), teacher, t)
    torch.testing.assert_close(got, torch.tensor(t * t * kl / 2, dtype=torch.float64))


def test_teacher_is_detached_by_default() -> None:
    student, teacher = _pair(1)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    loss = detloss.knowledge_distillation_kl_div_loss(student, teacher)
    assert torch.autograd.grad(loss, teacher, allow_unused=True)[0] is None
    loss = detloss.knowledge_distillation_kl_div_loss(student, teacher, detach_target=False)
    assert torch.autograd.grad(loss, teacher)[0].abs().sum() > 0


def test_module_and_config() -> None:
    # mmdetection's configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py
    module = detloss.build_loss(
        {"type": "KnowledgeDistillationKLDivLoss", "loss_weight": 0.25, "T": 10}
    )
    assert isinstance(module, detloss.KnowledgeDistillationKLDivLoss)
    assert module.T == 10.0
    student, teacher = _pair(2)
    weight = torch.rand(6, dtype=torch.float64)
    expected = 0.25 * (_reference(student, teacher, 10.0) * weight).sum() / (4 + 1.1920929e-07)
    torch.testing.assert_close(module(student, teacher, weight, avg_factor=4.0), expected)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match=r"T must be a finite number >= 1 and <= 10000, got 0.5"):
        detloss.KnowledgeDistillationKLDivLoss(T=0.5)
    with pytest.raises(ValueError, match=r"T must be a finite number >= 1 and <= 10000, got 0"):
        detloss.knowledge_distillation_kl_div_loss(torch.zeros(2, 3), torch.zeros(2, 3), T=0)
    with pytest.raises(ValueError, match=r"must be \(N, C\)"):
        detloss.knowledge_distillation_kl_div_loss(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        detloss.knowledge_distillation_kl_div_loss(torch.zeros(2, 3), torch.zeros(2, 4))
