"""``WDSRModel``: basicsr's ``SRModel`` with what WDSR training needs on top."""
import math
from os import path as osp

import torch

from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY

from ..utils.checkpoint import load_checkpoint, save_atomic, strip_module_prefix
from ..utils.inference import sr_forward

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@MODEL_REGISTRY.register()
class WDSRModel(SRModel):
    """SR model for WDSR (and the EDSR/RDN baselines), on basicsr's ``SRModel``.

    Training and validation are ``SRModel``'s; this class changes:

    * EMA (``train: ema_decay``) also copies buffers (BatchNorm statistics), so
      the EMA network of every ``norm`` variant validates correctly; weight
      norm's ``g`` and ``v`` are averaged, so the EMA copy stays a weight-normed
      network.
    * Every saved network file holds the ``network_g`` options beside
      ``params``/``params_ema``; network files and training states are written
      atomically (temporary file, then rename).
    * Checkpoints are read with ``weights_only=True``, with errors naming the
      option and file.
    * A loss that is NaN or infinite stops the run before anything is saved.
    * Evaluation (``val``): ``tile``/``tile_pad`` (input pixels) for large
      images, ``self_ensemble`` (x8), ``amp`` (``bf16``/``fp16`` autocast) and
      ``channels_last`` (the latter two on GPU only).
    """

    def __init__(self, opt):
        val_opt = opt.get('val') or {}
        amp = val_opt.get('amp')
        if amp is not None and amp not in AMP_DTYPES:
            raise ValueError(f"val:amp={amp!r} is not supported; use one of {sorted(AMP_DTYPES)} or leave it out.")
        super().__init__(opt)
        if self.device.type == 'cuda' and val_opt.get('channels_last'):
            self.net_g = self.net_g.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ training

    def model_ema(self, decay=0.999):
        super().model_ema(decay)
        net_g = self.get_bare_model(self.net_g)
        ema_buffers = dict(self.net_g_ema.named_buffers())
        for name, buffer in net_g.named_buffers():
            ema_buffers[name].copy_(buffer)

    def optimize_parameters(self, current_iter):
        super().optimize_parameters(current_iter)
        bad = {name: value for name, value in self.log_dict.items() if not math.isfinite(value)}
        if bad:
            raise FloatingPointError(f'Loss {bad} at iteration {current_iter}: training stopped, nothing saved; '
                                     'the last checkpoint in experiments/.../models is intact. Lower the learning '
                                     'rate or resume from the last training state.')

    # ------------------------------------------------------------------ saving and loading

    def save_network(self, net, net_label, current_iter, param_key='params'):
        """Save network(s) with the ``network_g`` options, atomically."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        label = 'latest' if current_iter == -1 else current_iter
        save_dict = {'network_g': dict(self.opt['network_g'])}
        for net_, key in zip(nets, keys):
            state = self.get_bare_model(net_).state_dict()
            save_dict[key] = {k: v.cpu() for k, v in strip_module_prefix(state).items()}
        self._save_rank0(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def _save_rank0(self, obj, path):
        save_atomic(obj, path)

    @master_only
    def save_training_state(self, epoch, current_iter):
        """Save the optimizer and scheduler states for resuming, atomically."""
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        save_atomic(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """Load ``param_key`` (or ``params``) of a checkpoint into ``net``, read with ``weights_only=True``."""
        checkpoint = load_checkpoint(load_path, 'path:pretrain_network_g')
        if param_key is not None:
            if param_key not in checkpoint and 'params' in checkpoint:
                param_key = 'params'
            if param_key not in checkpoint:
                raise KeyError(f'path:pretrain_network_g {load_path} has no {param_key!r} entry '
                               f'(it has {sorted(checkpoint)}).')
            checkpoint = checkpoint[param_key]
        state = strip_module_prefix(checkpoint)
        bare = self.get_bare_model(net)
        get_root_logger().info(f'Loading {bare.__class__.__name__} from {load_path} [{param_key}].')
        self._print_different_keys_loading(bare, state, strict)
        bare.load_state_dict(state, strict=strict)

    # ------------------------------------------------------------------ evaluation

    def test(self):
        val_opt = self.opt.get('val') or {}
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        lq = self.lq
        if self.device.type == 'cuda' and val_opt.get('channels_last'):
            lq = lq.contiguous(memory_format=torch.channels_last)
        amp = AMP_DTYPES.get(val_opt.get('amp')) if self.device.type == 'cuda' else None
        net.eval()
        self.output = sr_forward(
            net,
            lq,
            self.opt['scale'],
            tile=val_opt.get('tile', 0),
            tile_pad=val_opt.get('tile_pad', 10),
            ensemble=val_opt.get('self_ensemble', False),
            amp_dtype=amp)
        if net is self.net_g:
            self.net_g.train()
