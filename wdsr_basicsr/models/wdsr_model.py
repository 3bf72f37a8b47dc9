"""``WDSRModel``: basicsr's ``SRModel`` with what WDSR training needs on top."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections import OrderedDict
from collections.abc import Callable
from os import path as osp

import torch
import torch.distributed as dist
from basicsr.data import build_dataloader, build_dataset
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch import nn
from torch._dynamo.exc import BackendCompilerFailed, Unsupported, UserError

from ..archs.aligned import aligned_forward, check_alignable
from ..data.patches import device_set
from ..data.sampler import PlacedSampler
from ..declare import MAX_ITER, Rule
from ..options.errors import OptionError
from ..utils.checkpoint import CheckpointWriteError, load_checkpoint, save_atomic, strip_prefixes
from ..utils.compile import capture_step, compile_step, toolchain_problem
from ..utils.dist import all_gather
from ..utils.preempt import REQUEUE_EXIT, Preempted, StopSignals, StopVote
from ..utils.resume import random_states, restore_random_states
from ..utils.retention import BEST_NETWORK, checkpoints_to_remove
from .captured import CapturedUpdate, capture_problem, whole_step
from .loss_window import LossWindow
from .validation import SplitValidationModel

AMP_DTYPES = {True: torch.bfloat16, False: torch.float16}  # by amp_bf16
#: The ``torch.optim`` classes that ``train: optim_g: type`` may name (those of BasicSR's current main).
OPTIMIZERS = ('Adam', 'AdamW', 'Adamax', 'SGD', 'ASGD', 'RMSprop', 'Rprop')


@MODEL_REGISTRY.register()
class WDSRModel(SplitValidationModel):
    """SR model for WDSR (and the EDSR/RDN baselines), on basicsr's ``SRModel``.

    Training and validation follow ``SRModel``; this class changes:

    * Mixed precision and memory format, with the option names of the BasicSR
      lineage (traiNNer-redux), top level: ``use_amp`` (autocast for training
      and validation), ``amp_bf16`` (bf16, also on the CPU; otherwise fp16 with
      a ``GradScaler`` whose state is saved in the training state and restored
      on resume) and ``use_channels_last``. Weight norm's ``g * v / ||v||`` is
      computed from the fp32 parameters, before autocast casts the weight.
    * A training step never waits for the device: its losses stay there
      (:class:`~wdsr_basicsr.models.loss_window.LossWindow`) until basicsr's
      logger reads them (the log shows means since the previous line), the
      optimizer runs its fused implementation (else foreach), the EMA update
      is one foreach operation, batches are copied without a wait.
    * ``use_compile`` (top level): ``true``: the whole step (forward, losses,
      backward, optimizer, EMA) captured in one graph by ``torch.compile``
      (inductor: C++ on the CPU, Triton and CUDA graphs on one GPU; see
      :mod:`wdsr_basicsr.models.captured`); where it cannot be captured whole
      by construction (DDP, fp16's GradScaler, another optimizer than
      Adam/AdamW), forward and losses compiled, and a step that cannot be
      traced in one graph stops the run at its first iteration. ``auto``:
      the same on a CUDA GPU with Triton, eager elsewhere and where the step
      cannot be traced (each choice logged). Only the step is compiled: the
      network object, its saved keys, validation (eager, any image size) and
      the training states are those of an eager run, so a run may resume
      with the switch turned either way.
    * ``align_channels`` (top level, off): the training forward of WDSR-A/B
      with every conv's channels zero-padded to that multiple
      (:mod:`~wdsr_basicsr.archs.aligned`): the same function and gradients.
    * A batch of draws (a training set with ``cache_device``) is cut on the
      device in :meth:`feed_data`.
    * EMA (``train: ema_decay``) also copies buffers (BatchNorm statistics), so
      the EMA network of every ``norm`` variant validates correctly; weight
      norm's ``g`` and ``v`` are averaged, so the EMA copy stays a weight-normed
      network.
    * Validation (:class:`~wdsr_basicsr.models.validation.SplitValidationModel`): the bare network (or its
      EMA copy) on this rank's share of the images, the figures of a one-process run, the records and page
      of :class:`~wdsr_basicsr.models.results.ResultsWriter`.
    * Every saved network file holds the ``network_g`` options beside
      ``params``/``params_ema``; network files and training states are written
      atomically (temporary file, then rename).
    * Checkpoints are read with ``weights_only=True``, with errors naming the
      option and file; asking for ``params_ema`` from a file trained without
      EMA loads ``params`` and says so in the log.
    * On resume, every rank checks that all ranks resumed at the same
      iteration with the same weights.
    * In basicsr's training pipeline (:meth:`follow_training`): SIGTERM,
      SIGUSR1 and Ctrl+C save at the next iteration boundary that every rank
      agrees on and end the run with :data:`~wdsr_basicsr.utils.preempt.REQUEUE_EXIT`;
      a training state holds the sampler's place in its epoch and every
      rank's random states, so a resumed run continues the epoch where it
      stopped and trains what the uninterrupted run trains.
    * ``logger: keep_checkpoints`` (default: all) keeps the network files and
      training states of the last N saved iterations; ``val: best_metric``
      (default: the first of ``val: metrics``; ``better: lower`` in a
      metric's options reverses it) names the metric whose best value on the
      first validation set keeps its network as ``models/net_g_best.pth``.
    * A loss that is NaN or infinite stops the run at the next log line, save
      or validation, whichever comes first: before anything is saved.
    * ``train: optim_g: type`` may be any optimizer of BasicSR's current main
      (Adam, AdamW, Adamax, SGD, ASGD, RMSprop, Rprop); basicsr 1.4.2 builds Adam only.
    """

    #: What this class reads beside ``SRModel`` (:mod:`wdsr_basicsr.declare`): the option check's one home of
    #: these keys' rules.
    option_keys = {
        '': {
            'use_amp': Rule(
                'bool',
                null=True,
                doc='Mixed precision: forward and losses under autocast (fp16 on a GPU'
                ' with a gradient scaler, or bf16 with amp_bf16).',
            ),
            'amp_bf16': Rule('bool', null=True, doc='With use_amp: bfloat16 instead of float16 (no gradient scaler).'),
            'use_channels_last': Rule('bool', null=True, doc='Network and batches in channels-last memory format.'),
            'use_compile': Rule(
                'bool',
                null=True,
                words=('auto',),
                doc='torch.compile: true compiles (the whole '
                'training step where it can), auto where CUDA and Triton are, false never.',
            ),
            'align_channels': Rule(
                'int',
                1,
                64,
                null=True,
                doc="WDSR-A/B's convs run with channels zero-padded to "
                'this multiple (same outputs); null: as declared.',
            ),
        },
        'logger': {
            'keep_checkpoints': Rule(
                'int',
                1,
                MAX_ITER,
                null=True,
                doc='How many of the latest checkpoints to keep '
                '(the best and the final one are never removed); null: all.',
            ),
        },
        'val': {
            'best_metric': Rule(
                'str',
                null=True,
                doc='The val:metrics entry whose best value saves models/net_g_best.pth (first validation set).',
            ),
        },
    }
    #: The optimizers :meth:`get_optimizer` builds beside basicsr's Adam.
    option_builds = {'get_optimizer': OPTIMIZERS}

    lq: torch.Tensor  # set by basicsr's feed_data
    #: torch.compile's backend for ``use_compile`` (tests trace with 'aot_eager': the same graph, no code generation).
    compile_backend = 'inductor'

    def __init__(self, opt: dict):
        self.amp_dtype = AMP_DTYPES[bool(opt.get('amp_bf16', False))] if opt.get('use_amp') else None
        self.memory_format = torch.channels_last if opt.get('use_channels_last') else torch.contiguous_format
        self.loss_window = LossWindow()
        self.train_sampler: PlacedSampler | None = None  # basicsr's pipeline's training sampler (follow_training)
        self._vote: StopVote | None = None
        self._random_states: list | None = None  # every rank's, gathered by save for save_training_state
        super().__init__(opt)
        if opt['dist']:
            ddp = self.net_g
            get_root_logger().info(
                f'torch.distributed: backend {dist.get_backend()}, {opt["world_size"]} ranks, '
                f'device {self.device}, broadcast_buffers {ddp.broadcast_buffers}.'
            )

    def model_to_device(self, net: nn.Module):
        return super().model_to_device(net.to(memory_format=self.memory_format))

    def feed_data(self, data: dict) -> None:
        """``lq`` (and ``gt``) on the device, copied without a wait from pinned memory; ``lq`` in the memory format.

        A batch of a training set whose images are on the device (``cache_device``) holds each sample's image and
        draw: the patches are cut there (:class:`~wdsr_basicsr.data.patches.DeviceSet`).
        """
        if 'patch_draw' in data:  # cut where the set lives, then on the model's device (the same one, on a GPU)
            patches = device_set(data['patch_set'][0])
            images = data['patch_image'].to(patches.device, non_blocking=True)
            lq, gt = patches.batch(images, data['patch_draw'].to(patches.device, non_blocking=True))
            lq, self.gt = lq.to(self.device, non_blocking=True), gt.to(self.device, non_blocking=True)
        else:
            lq = data['lq'].to(self.device, non_blocking=True)
            if 'gt' in data:
                self.gt = data['gt'].to(self.device, non_blocking=True)
        self.lq = lq.contiguous(memory_format=self.memory_format)

    # ------------------------------------------------------------------ training

    def init_training_settings(self):
        super().init_training_settings()
        if hasattr(self, 'net_g_ema'):
            self.net_g_ema.to(memory_format=self.memory_format)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self._train_forward = self._aligned_forward() or self.net_g
        mode, why = self._step_plan()
        self.use_step(mode)
        logger = get_root_logger()
        if mode == 'captured':
            logger.info(
                'use_compile: the training step is captured whole (forward, losses, backward, optimizer, EMA: one '
                f'graph{", replayed as CUDA graphs" if self.device.type == "cuda" else ""}) by torch.compile on '
                f'{self.device.type} at the first iteration.'
            )
        elif mode == 'compiled':
            logger.info(
                'use_compile: the training step (forward and losses, and their backward) is compiled by '
                f'torch.compile on {self.device.type} at the first iteration; not captured whole: {why}.'
            )
        elif self.opt.get('use_compile') == 'auto':
            logger.info(f'use_compile: auto: the training step runs eagerly ({why}).')
        logger.info('Training losses in the log are means over the iterations since the previous log line.')

    def use_step(self, mode: str) -> None:
        """Run the training step as ``mode`` says from the next iteration (compiled at its first call).

        Args:
            mode (str): ``'eager'``; ``'compiled'``: forward and losses (and so their backward) through
                torch.compile; ``'captured'``: the whole step in one graph (:mod:`.captured`).
        """
        self._captured = self._compiled = None
        if mode == 'compiled':
            # the function, not a bound method: the model keeping a reference to itself would outlive the pipeline
            # and be destroyed (its DDP wrapper included) at interpreter exit, after torch.distributed
            self._compiled = compile_step(type(self)._losses, self.device.type, bool(self.opt['dist']))
        elif mode == 'captured':  # never under DDP (capture_problem), so its bound methods hold no DDP wrapper
            update = CapturedUpdate(self.optimizer_g, self.device)
            ema = functools.partial(self.model_ema, self.ema_decay) if self.ema_decay > 0 else None
            step = whole_step(self._losses, update, ema)
            self._captured = (capture_step(step, self.device.type, self.compile_backend), update)
        elif mode != 'eager':
            raise ValueError(f"mode={mode!r}: the step runs 'eager', 'compiled' or 'captured'.")

    def _aligned_forward(self):
        """The training forward with channels padded to ``align_channels`` (:mod:`~wdsr_basicsr.archs.aligned`), or
        None when the option is off. Off by default: unmeasured on a GPU yet.

        Raises:
            ValueError: If the network cannot be padded so (the option check refuses it first, and
                :func:`~wdsr_basicsr.utils.dist.check_launch` refuses it in a distributed run, which trains
                through DDP's forward).
        """
        multiple = self.opt.get('align_channels')
        if not multiple:
            return None
        net = self.get_bare_model(self.net_g)
        check_alignable(net)
        return functools.partial(aligned_forward, net, multiple=multiple)

    def _step_plan(self) -> tuple[str, str]:
        """How the training step runs: ('eager' | 'compiled' | 'captured', why not further).

        Raises:
            RuntimeError: If ``use_compile: true`` and torch.compile lacks its toolchain here.
        """
        choice = self.opt.get('use_compile')
        if not choice:
            return 'eager', 'use_compile is off'
        problem = toolchain_problem(self.device.type)
        if problem and choice is True:
            raise RuntimeError(f'use_compile: {problem}.')
        if problem:
            return 'eager', problem
        if choice == 'auto' and self.device.type != 'cuda':
            return 'eager', 'auto compiles on CUDA GPUs; on the CPU compiling takes minutes (use_compile: true)'
        if self.device.type != 'cuda':
            # a CPU launches no kernels, so capturing gains nothing there, and inductor's C++ for the joint graph
            # ran slower: WDSR-B 16x32, batch 16, 2 cores (scripts/bench_train.py): 575 ms/iter compiled, 832
            # captured; the demo 32 against 58 ms/iter
            return 'compiled', 'on the CPU the whole step captured ran slower than its forward and losses compiled'
        problem = capture_problem(
            distributed=bool(self.opt['dist']), grad_scaler=self.scaler.is_enabled(), optimizers=self.optimizers
        )
        return ('compiled', problem) if problem else ('captured', '')

    def model_ema(self, decay=0.999):
        """``net_g_ema = decay * net_g_ema + (1 - decay) * net_g`` over all parameters at once; buffers copied."""
        net_g = self.get_bare_model(self.net_g)
        ema_params = [p.data for p in self.net_g_ema.parameters()]
        params = [p.data for p in net_g.parameters()]
        if decay == 0:
            torch._foreach_copy_(ema_params, params)
        else:
            torch._foreach_lerp_(ema_params, params, 1 - decay)
        ema_buffers = [b.data for b in self.net_g_ema.buffers()]
        if ema_buffers:  # torch's foreach ops refuse empty lists (EDSR keeps no buffer)
            torch._foreach_copy_(ema_buffers, [b.data for b in net_g.buffers()])

    def _losses(self, lq: torch.Tensor, gt: torch.Tensor) -> OrderedDict:
        """The losses of the network's output (fp32): what ``use_compile`` compiles (its backward too)."""
        with self._autocast():
            output = self._train_forward(lq)
        output = output.float()
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(output, gt)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(output, gt)
            loss_dict.update((k, v) for k, v in (('l_percep', l_percep), ('l_style', l_style)) if v is not None)
        return loss_dict

    def optimize_parameters(self, current_iter: int) -> None:
        """One step: forward (autocast with ``use_amp``), losses in fp32, (scaled) backward, update, EMA.

        Nothing here waits for the device: the losses are added to :attr:`loss_window` on the device and read
        (and checked) when the log, a save or a validation asks.
        """
        losses = self._eager_step() if self._captured is None else self._captured_step(*self._captured)
        self.loss_window.add(current_iter, losses)
        if self.train_sampler is not None and self._vote is not None:
            self.train_sampler.take(self.lq.shape[0])
            if self._vote.stops_after(current_iter):
                self._stop(current_iter)

    def follow_training(self, sampler: PlacedSampler) -> None:
        """Train in basicsr's pipeline, whose training loader draws from ``sampler``.

        Each iteration counts the samples it took (a training state saves the place), and the run stops on
        request (:mod:`~wdsr_basicsr.utils.preempt`): SIGTERM, SIGUSR1 and the first Ctrl+C save at the next
        iteration boundary every rank agrees on, then end the run with
        :data:`~wdsr_basicsr.utils.preempt.REQUEUE_EXIT`. :func:`wdsr_basicsr.compat.build_model` calls it on
        every rank.
        """
        self.train_sampler = sampler
        signals = StopSignals()
        installed = signals.install()
        self._vote = StopVote(signals)  # on every rank alike: past it, every rank handles the signals
        if installed:
            get_root_logger().info(
                'SIGTERM, SIGUSR1 or Ctrl+C: the run saves at the next iteration boundary and exits with status '
                f'{REQUEUE_EXIT} (run the same command with --auto_resume to continue); a second Ctrl+C stops at once.'
            )

    def _stop(self, current_iter: int) -> None:
        """Save at ``current_iter`` (every rank calls it at the same iteration) and end the run.

        Raises:
            Preempted: Always, once saved.
        """
        asked = self._vote.signals.received if self._vote else None
        get_root_logger().warning(
            f'{asked or "Another rank was asked to stop"}: saving iteration {current_iter} and stopping (exit status '
            f'{REQUEUE_EXIT}); run the same command with --auto_resume to continue from it.'
        )
        assert self.train_sampler is not None  # follow_training set both
        self.save(self.train_sampler.epoch, current_iter)
        raise Preempted(current_iter)

    def _eager_step(self) -> dict:
        """The step eagerly (forward and losses compiled where :meth:`_step_plan` said so); the detached losses."""
        self.optimizer_g.zero_grad(set_to_none=True)
        loss_dict = self._compiled(self, self.lq, self.gt) if self._compiled else self._losses(self.lq, self.gt)
        self.scaler.scale(sum(loss_dict.values())).backward()
        self.scaler.step(self.optimizer_g)
        self.scaler.update()
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
        return {name: value.detach() for name, value in loss_dict.items()}

    def _captured_step(self, captured: Callable, update: CapturedUpdate) -> dict:
        """The captured step; one that cannot be captured (found at the first call, before anything changed) runs
        eagerly from then on under ``use_compile: auto``, and stops the run under ``true``."""
        update.prepare()
        try:
            return captured(self.lq, self.gt)
        except (Unsupported, UserError, BackendCompilerFailed) as error:  # found before the step ran
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = next((line for line in lines if line.startswith('Caused by:')), lines[0] if lines else repr(error))
            if self.opt.get('use_compile') is True:
                raise RuntimeError(
                    f'use_compile: the training step cannot be captured whole ({reason}); set use_compile: auto '
                    'to run it eagerly then, or false.'
                ) from None
            get_root_logger().warning(
                f'use_compile: auto: the training step runs eagerly: it cannot be captured ({reason}).'
            )
            self._captured = None
            return self._eager_step()

    def get_current_log(self) -> OrderedDict:
        """The mean of each loss since the previous log line, over all ranks; raise if one is not finite."""
        means = self.loss_window.read('logging')
        self.loss_window.restart()
        return means

    def save(self, epoch: int, current_iter: int) -> None:
        """basicsr's save, after checking that no loss since the last log line is NaN or infinite; then the
        checkpoints beyond ``logger: keep_checkpoints`` go. Every rank calls it (basicsr's pipeline does).

        Raises:
            CheckpointWriteError: On every rank, if rank 0 could not write a file (the earlier ones are intact).
        """
        self.loss_window.read('saving')
        self._random_states = all_gather(random_states()) if current_iter != -1 else None
        failed = None
        try:
            super().save(epoch, current_iter)
        except CheckpointWriteError as error:
            failed = str(error)
        failures = [f for f in all_gather(failed) if f]  # rank 0 writes: every rank stops alike
        if failures:
            raise CheckpointWriteError(failures[0])
        if current_iter != -1:
            self._remove_old_checkpoints(current_iter)
        elif self._vote is not None:  # basicsr saves the latest networks once the loop is over: stop no more
            self._vote.signals.restore()

    @master_only
    def _remove_old_checkpoints(self, current_iter: int) -> None:
        keep = self.opt['logger'].get('keep_checkpoints')
        if not keep:
            return
        paths = self.opt['path']
        removed = checkpoints_to_remove(paths['models'], paths['training_states'], keep, current_iter)
        for path in removed:
            os.remove(path)
        if removed:
            get_root_logger().info(f'keep_checkpoints: {keep}: removed {", ".join(map(osp.basename, removed))}.')

    def validation(self, dataloader, current_iter, tb_logger, save_img=False) -> None:
        """The validation, after checking that no loss since the last log line is NaN or infinite; a training
        validation with the best ``val: best_metric`` yet saves the networks as ``net_g_best.pth``."""
        self.loss_window.read('validating')
        super().validation(dataloader, current_iter, tb_logger, save_img)
        if self.opt['is_train'] and isinstance(current_iter, int):
            self._keep_best(dataloader.dataset.opt['name'], current_iter)

    def best_metric(self) -> tuple[str, str] | None:
        """The validation set and metric whose best value keeps ``net_g_best.pth``: the first validation set and
        ``val: best_metric`` (default: the first of ``val: metrics``); None without either."""
        val = self.opt.get('val') or {}
        metrics = list(val.get('metrics') or {})
        sets = [d['name'] for phase, d in self.opt['datasets'].items() if phase.split('_')[0] == 'val']
        if not metrics or not sets:
            return None
        return sets[0], val.get('best_metric') or metrics[0]

    def _keep_best(self, dataset_name: str, current_iter: int) -> None:
        best = self.best_metric()
        if best is None or best[0] != dataset_name:
            return
        record = self.best_metric_results[dataset_name][best[1]]
        if record['iter'] != current_iter:
            return
        get_root_logger().info(
            f'Best {best[1]} on {dataset_name} so far: {record["val"]:.4f} at iteration {current_iter}; saved as '
            f'{BEST_NETWORK}.'
        )
        nets, label, keys = self._networks_to_save()
        meta = {'iter': current_iter, 'dataset': dataset_name, 'metric': best[1], 'value': float(record['val'])}
        self.save_network(nets, label, 'best', keys, best=meta)

    def _networks_to_save(self) -> tuple[list[nn.Module], str, list[str]]:
        """basicsr's ``SRModel.save``'s arguments of ``save_network``: the networks, their label, their keys."""
        if hasattr(self, 'net_g_ema'):
            return [self.net_g, self.net_g_ema], 'net_g', ['params', 'params_ema']
        return [self.net_g], 'net_g', ['params']

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """The ``torch.optim`` class ``optim_type`` (those of BasicSR's current main), else basicsr's own choice.

        Unless the options say otherwise, the optimizer runs its fused
        implementation where torch has one (Adam, AdamW, SGD; on CUDA and the
        CPU), else its foreach one: one kernel over all parameters instead of a
        few per parameter, and its step counts kept on the parameters' device,
        so a step never reads one back to the host.
        """
        if optim_type in OPTIMIZERS:
            optimizer_class = getattr(torch.optim, optim_type)
            if 'fused' not in kwargs and 'foreach' not in kwargs:
                if 'fused' in inspect.signature(optimizer_class).parameters:
                    kwargs = dict(kwargs, fused=True)
                else:
                    kwargs = dict(kwargs, foreach=True)
            return optimizer_class(params, lr, **kwargs)
        return super().get_optimizer(optim_type, params, lr, **kwargs)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------ saving and loading

    def save_network(
        self, net, net_label: str, current_iter: int | str, param_key='params', *, best: dict | None = None
    ) -> None:
        """Save network(s) with the ``network_g`` options, atomically, as ``<net_label>_<current_iter>.pth``
        (``latest`` for -1); ``best``: the validation it was best at (``iter``, ``dataset``, ``metric``,
        ``value``), kept in the file and shown on the results page of a test run of it."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        label = 'latest' if current_iter == -1 else current_iter
        save_dict: dict = {'network_g': dict(self.opt['network_g'])}
        if best is not None:
            save_dict['best'] = best
        for net_, key in zip(nets, keys):
            state = self.get_bare_model(net_).state_dict()
            save_dict[key] = {k: v.cpu() for k, v in strip_prefixes(state).items()}
        self._save_rank0(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def _save_rank0(self, obj, path):
        save_atomic(obj, path)

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """Save the optimizer and scheduler states for resuming, atomically, with every rank's random states and
        the training sampler's place in its epoch."""
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'random_states': self._random_states,
        }
        if self.train_sampler is not None:
            state['sampler'] = self.train_sampler.state_dict()
        if self.scaler.is_enabled():
            state['scaler'] = self.scaler.state_dict()
        save_atomic(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state: dict) -> None:
        """Restore optimizers, schedulers and the fp16 ``GradScaler``; check that every rank resumed alike."""
        super().resume_training(resume_state)
        if self.scaler.is_enabled():
            if 'scaler' in resume_state:
                self.scaler.load_state_dict(resume_state['scaler'])
            else:
                get_root_logger().warning(
                    f'{self.opt["path"]["resume_state"]} has no GradScaler state (trained '
                    'without fp16): the loss scale starts afresh.'
                )
        self._check_ranks_agree(resume_state['iter'])
        if self.results.record and self.opt['rank'] == 0:  # the iterations after this one are trained again
            self.results.forget_after(resume_state['iter'])
        self._resume_place(resume_state)
        self._resume_best()

    def _resume_place(self, resume_state: dict) -> None:
        """Continue the random states and the sampler's epoch where the state stopped, where it holds them."""
        logger = get_root_logger()
        states = resume_state.get('random_states')
        if states and len(states) == self.opt['world_size']:
            restore_random_states(states[self.opt['rank']])
        elif states:
            logger.warning(f'The training state holds the random states of {len(states)} ranks: they start afresh.')
        if self.train_sampler is None:
            return
        why = "it holds no sampler place (saved by basicsr's or an older model)"
        if 'sampler' in resume_state:
            try:
                self.train_sampler.load_state_dict(resume_state['sampler'])
                why = ''
            except ValueError as error:
                why = str(error)
        if why:
            logger.warning(f'Resuming at the start of epoch {resume_state["epoch"]}, as basicsr does: {why}.')
        else:
            logger.info(
                f'Resuming epoch {resume_state["epoch"]} after its first {self.train_sampler.taken} samples per rank.'
            )

    def _resume_best(self) -> None:
        """basicsr's best validation figures (its ``Best:`` log lines, :meth:`_keep_best`) from the record."""
        metrics = (self.opt.get('val') or {}).get('metrics') or {}
        rows = all_gather(self.results.rows() if self.opt['rank'] == 0 else None)[0]
        if not metrics:
            return
        for row in rows:
            self._initialize_best_metric_results(row['dataset'])
            for metric, value in row['mean'].items():
                if metric in metrics and value is not None:
                    self._update_best_metric_result(row['dataset'], metric, value, row['iter'])

    def validate_missed(self, current_iter: int) -> None:
        """Validate at the resumed iteration the sets it has no row for (a run stopped between save and validation).

        basicsr saves a training state, then validates: a run stopped between the two resumes after that
        iteration, whose validation would never be recorded. The weights are the saved ones, so the row is the
        one the run would have written. basicsr's pipeline runs it right after resuming the model (see
        :func:`wdsr_basicsr.compat.build_model`).
        """
        val = self.opt.get('val') or {}
        if not self.results.record or not val.get('val_freq') or current_iter % val['val_freq']:
            return
        done = self.results.recorded(current_iter)
        missed = [
            dataset_opt
            for phase, dataset_opt in self.opt['datasets'].items()
            if phase.split('_')[0] == 'val' and dataset_opt['name'] not in done
        ]
        for dataset_opt in all_gather(missed)[0]:  # rank 0 read the record: every rank validates alike
            get_root_logger().info(
                f'Validating {dataset_opt["name"]} at iteration {current_iter}: the run stopped '
                'after saving this iteration, before validating it.'
            )
            loader = build_dataloader(
                build_dataset(dataset_opt),
                dataset_opt,
                num_gpu=self.opt['num_gpu'],
                dist=self.opt['dist'],
                sampler=None,
                seed=self.opt['manual_seed'],
            )
            self.validation(loader, current_iter, None, val.get('save_img', False))

    def _check_ranks_agree(self, current_iter):
        """Raise unless every rank holds the same iteration and the same network (and EMA) weights."""
        nets = [self.get_bare_model(self.net_g)] + ([self.net_g_ema] if hasattr(self, 'net_g_ema') else [])
        digest = (current_iter, [float(sum(p.detach().double().sum() for p in n.state_dict().values())) for n in nets])
        seen = all_gather(digest)
        if any(other != digest for other in seen):
            raise RuntimeError(
                f'Ranks resumed differently (iteration, weight sums per rank: {seen}); '
                'every rank must read the same experiments/ folder.'
            )
        get_root_logger().info(f'All {len(seen)} rank(s) resumed at iteration {current_iter} with identical weights.')

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True, param_key: str = 'params') -> None:
        """Load ``param_key`` (or ``params``) of a checkpoint into ``net``, read with ``weights_only=True``."""
        checkpoint = load_checkpoint(load_path, 'path:pretrain_network_g')
        saved_network = checkpoint.get('network_g') if isinstance(checkpoint.get('network_g'), dict) else None
        if net is self.net_g:
            self.network_file = {'path': load_path, 'best': checkpoint.get('best')}
        if param_key is not None:
            if param_key not in checkpoint and 'params' in checkpoint:
                get_root_logger().warning(
                    f"{load_path} has no {param_key!r} (trained without EMA): loading its 'params' instead."
                )
                param_key = 'params'
            if param_key not in checkpoint:
                raise KeyError(
                    f'path:pretrain_network_g {load_path} has no {param_key!r} entry (it has {sorted(checkpoint)}).'
                )
            checkpoint = checkpoint[param_key]
        state = strip_prefixes(checkpoint)
        bare = self.get_bare_model(net)
        get_root_logger().info(f'Loading {bare.__class__.__name__} from {load_path} [{param_key}].')
        if strict:
            self._refuse_other_network(bare, state, load_path, saved_network)
        self._print_different_keys_loading(bare, state, strict)
        bare.load_state_dict(state, strict=strict)

    def _refuse_other_network(self, net, state, load_path, saved_network):
        """Refuse, in one message, weights that do not fit ``net``: the ``network_g`` options that differ."""
        own = net.state_dict()
        misfits = sorted(set(own) ^ set(state)) + [k for k in own if k in state and own[k].shape != state[k].shape]
        if not misfits:
            return
        if saved_network is not None:
            ours = self.opt['network_g']
            differ = [
                f'{key}: {saved_network.get(key)!r} there, {ours.get(key)!r} here'
                for key in sorted(set(saved_network) | set(ours), key=str)
                if saved_network.get(key) != ours.get(key)
            ]
            why = 'network_g differs (' + '; '.join(differ) + ')' if differ else 'its tensors do not fit'
        else:
            why = f'{len(misfits)} tensors do not fit (e.g. {misfits[0]})'
        resume = self.opt['path'].get('resume_state')
        source = f'resume_state {resume}: its network {load_path}' if resume else f'path:pretrain_network_g {load_path}'
        raise OptionError(
            f'{source} was trained with another network: {why}. Resume with the options it was '
            'trained with, or train under another name; nothing was changed.'
        )
