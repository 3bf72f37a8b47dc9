"""The whole training step as one function that ``torch.compile`` captures in one graph.

``torch.optim``'s ``step`` breaks the graph on purpose (its ``no_grad`` switch), and ``backward()`` leaves
gradients in ``.grad``, which dynamo's optimizer support refuses to read in the same graph; so the captured
step takes the gradients with ``torch.autograd.grad`` and hands them to the optimizer's own functional
update (``torch.optim.adam.adam``, which ``Adam`` and ``AdamW`` call themselves) over the optimizer's own
state tensors. The optimizer object, its ``state_dict`` and basicsr's schedulers are untouched: the
learning rate the schedulers write (a Python number in ``param_groups``) is copied into a device tensor
before each step, only when it changed, so a new rate neither recompiles nor waits for the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim.adam import adam

#: The optimizers whose update the captured step runs (``AdamW`` is ``Adam`` with decoupled weight decay).
CAPTURED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)


def capture_problem(*, distributed: bool, grad_scaler: bool, optimizers: list) -> str | None:
    """Why the step of a model with these settings cannot be captured whole, or None when it can.

    Args:
        distributed (bool): Whether the network is wrapped in DDP.
        grad_scaler (bool): Whether fp16's ``GradScaler`` is on.
        optimizers (list[torch.optim.Optimizer]): The model's optimizers.

    Returns:
        str | None: A clause naming the reason.
    """
    if distributed:
        # DDP all-reduces gradients from hooks on ``.grad`` accumulation, in buckets that overlap the backward;
        # gradients taken with autograd.grad bypass them. Forward and losses compiled with the backward in
        # DDP's hands keeps that overlap (compiled autograd with DDP is experimental in torch, and unmeasured here).
        return "under DDP the gradient all-reduce runs in DDP's backward hooks"
    if grad_scaler:
        return "fp16's GradScaler decides on the host whether a step is skipped"
    others = [type(o).__name__ for o in optimizers if type(o) not in CAPTURED_OPTIMIZERS]
    if others:
        return f'the captured step runs Adam and AdamW only, not {", ".join(others)}'
    if len(optimizers) != 1:
        return f'the captured step updates one optimizer, not {len(optimizers)}'
    return None


class CapturedUpdate:
    """The optimizer's update and learning rate as tensors that a captured step can take.

    Args:
        optimizer (torch.optim.Adam): An ``Adam`` or ``AdamW`` (see :data:`CAPTURED_OPTIMIZERS`).
        device (torch.device): Where the parameters live.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device):
        self.optimizer: Any = optimizer  # an Adam: its _init_group, and the _opt_called flag torch's schedulers read
        self.cuda = device.type == 'cuda'
        # one-element vectors (torch.optim squeezes them): dynamo would take a 0-d CPU tensor for a float input
        # and guard on its value at every call
        self.lrs = [torch.tensor([float(g['lr'])], dtype=torch.float64, device=device) for g in optimizer.param_groups]
        self.host_lrs = [float(g['lr']) for g in optimizer.param_groups]
        self.groups: list[tuple] = []
        self._state_ids: list[int] = []

    def params(self) -> list[torch.Tensor]:
        """Every parameter the optimizer updates, in its groups' order."""
        return [p for group in self.optimizer.param_groups for p in group['params']]

    def prepare(self) -> None:
        """Before a step (outside the graph): the state of every parameter, and the scheduler's learning rates.

        The state is made by the optimizer itself (``_init_group``, as its ``step`` does) the first time, and
        read again when it was replaced (``load_state_dict`` on resume). A learning rate is written into its
        device tensor only when the scheduler changed it: a copy of a number, no wait.
        """
        # ids cannot be reused while self.groups holds the old tensors: a replaced state always shows
        state_ids = [id(self.optimizer.state.get(p, {}).get('exp_avg')) for p in self.params()]
        if not self.groups or state_ids != self._state_ids:
            self.groups = [self._group_state(group) for group in self.optimizer.param_groups]
            self._state_ids = [id(self.optimizer.state[p]['exp_avg']) for p in self.params()]
        # the captured update is this optimizer's step: torch's schedulers warn unless its step wrapper ran
        self.optimizer._opt_called = True
        for i, group in enumerate(self.optimizer.param_groups):
            if float(group['lr']) != self.host_lrs[i]:
                self.host_lrs[i] = float(group['lr'])
                self.lrs[i].fill_(self.host_lrs[i])

    def _group_state(self, group: dict) -> tuple:
        params = list(group['params'])
        for p in params:
            p.grad = torch.zeros_like(p)  # _init_group takes the parameters that have a gradient
        try:
            lists: tuple[list, ...] = ([], [], [], [], [], [])
            has_complex = self.optimizer._init_group(group, *lists)
        finally:
            for p in params:
                p.grad = None
        _, _, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = lists
        for p, step in zip(params, steps):  # the capturable update wants its step counts beside the parameters
            if step.device != p.device:  # (where fused Adam keeps them; foreach Adam keeps them on the CPU)
                self.optimizer.state[p]['step'] = step.to(p.device)
        steps = [self.optimizer.state[p]['step'] for p in params]
        if self.cuda:
            for tensor in (*exp_avgs, *exp_avg_sqs, *max_exp_avg_sqs, *steps, *self.lrs):
                torch._dynamo.mark_static_address(tensor)  # CUDA graphs update them in place, uncopied
        return params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, has_complex

    def apply(self, grads: list[torch.Tensor]) -> None:
        """The optimizer's update of every group with ``grads`` (in :meth:`params` order); inside the graph."""
        start = 0
        for (params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, has_complex), group, lr in zip(
            self.groups, self.optimizer.param_groups, self.lrs
        ):
            beta1, beta2 = group['betas']
            # the bias corrections from fp64 step counts, as the eager kernels compute them (in fp32, 1 - 0.999**1
            # is off by 1e-5); the counts are whole numbers, exact in both
            steps64 = [step.double() for step in steps]
            adam(
                params,
                grads[start : start + len(params)],
                exp_avgs,
                exp_avg_sqs,
                max_exp_avg_sqs,
                steps64,
                # capturable: every hyper-parameter stays a tensor in the graph (not read back to guard on it)
                foreach=self.cuda,  # inductor fuses the per-tensor form on the CPU
                capturable=True,
                differentiable=False,
                fused=False,
                has_complex=has_complex,
                decoupled_weight_decay=group.get('decoupled_weight_decay', False),
                amsgrad=group['amsgrad'],
                beta1=beta1,
                beta2=beta2,
                lr=lr,
                weight_decay=group['weight_decay'],
                eps=group['eps'],
                maximize=group['maximize'],
            )
            torch._foreach_copy_(steps, steps64)
            start += len(params)


def whole_step(losses: Callable, update: CapturedUpdate, ema: Callable | None) -> Callable:
    """The function to capture: losses, their gradients, the optimizer's update and the EMA, in one graph.

    Args:
        losses (Callable): ``(lq, gt) -> dict`` of scalar losses (their sum is minimised).
        update (CapturedUpdate): The optimizer's update.
        ema (Callable | None): The EMA update (no arguments), or None without EMA.

    Returns:
        Callable: ``(lq, gt) -> dict`` of the detached losses.
    """

    def step(lq: torch.Tensor, gt: torch.Tensor) -> dict:
        loss_dict = losses(lq, gt)
        grads = torch.autograd.grad(sum(loss_dict.values()), update.params())
        with torch.no_grad():
            update.apply(list(grads))
            if ema is not None:
                ema()
        return {name: value.detach() for name, value in loss_dict.items()}

    return step
