"""Validation split across the ranks of a distributed run, with the figures of a one-process run."""

from __future__ import annotations

import os.path as osp
from typing import Any

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import imwrite, tensor2img
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..declare import MAX_ITER, Rule
from ..utils.dist import all_gather
from ..utils.tiling import sr_forward
from .results import ResultsWriter


class SplitValidationModel(SRModel):
    """basicsr's ``SRModel`` whose validation runs the bare network (or its EMA copy), never the DDP wrapper.

    No collective runs on one rank only: in a distributed run the images are split across the ranks and the
    per-image metrics gathered, so the figures (and the best-metric record) equal a one-process run's and
    each image is saved once. What the validation writes is :class:`ResultsWriter`'s: a training run's rows
    of :data:`VALIDATIONS_FILE`, a test run's ``metrics_<set>.json`` and results page. ``val`` may ask for
    ``tile``/``tile_pad`` (input pixels) for large images and ``self_ensemble`` (x8).
    """

    #: What this class reads beside ``SRModel`` (:mod:`wdsr_basicsr.declare`).
    option_keys = {
        'val': {
            'tile': Rule(
                'int',
                0,
                MAX_ITER,
                doc='Validate in tiles of this many LR pixels a side (bounded memory); 0: whole images.',
            ),
            'tile_pad': Rule('int', 0, MAX_ITER, doc='LR pixels of context around each tile (cropped off after).'),
            'self_ensemble': Rule('bool', null=True, doc='Average the outputs of the 8 flips and rotations (x8).'),
        }
    }

    lq: torch.Tensor  # set by basicsr's feed_data
    amp_dtype: torch.dtype | None = None  # autocast in evaluation (a subclass's mixed precision)
    #: The file ``net_g`` was loaded from (``path``, and ``best``: the validation it was saved at as the best), set
    #: by a subclass's ``load_network``; a test run's records and page name it.
    network_file: dict | None = None

    @property
    def results(self) -> ResultsWriter:
        """What the validations write: images, records, a test run's page (:class:`ResultsWriter`)."""
        return ResultsWriter(self.opt)

    def test(self) -> None:
        """SR of ``self.lq`` by the EMA copy or the bare network (never the DDP wrapper), as ``val`` says."""
        val_opt = self.opt.get('val') or {}
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        self.output = sr_forward(
            net,
            self.lq,
            self.opt['scale'],
            tile=val_opt.get('tile', 0),
            tile_pad=val_opt.get('tile_pad', 10),
            ensemble=val_opt.get('self_ensemble', False),
            amp_dtype=self.amp_dtype,
        )
        net.train(was_training)

    def validation(self, dataloader: DataLoader, current_iter: int | str, tb_logger, save_img: bool = False) -> None:
        """Validate on ``dataloader``'s dataset, split across the ranks of a distributed run.

        Rank r takes images r, r + world_size, ...; the per-image metrics are
        gathered on every rank and averaged in the dataset's order, so the
        figures (and the best-metric record) equal a one-process run's. Each
        image is saved by the rank that ran it. In a test run, rank 0 writes
        the per-image metrics to ``results/<name>/metrics_<dataset name>.json``;
        in a training run it records the means in :data:`VALIDATIONS_FILE` (one row per iteration and set).

        Args:
            dataloader (DataLoader): basicsr's validation loader (batch 1).
            current_iter (int | str): Iteration, or the run's name when testing.
            tb_logger: Tensorboard logger or None.
            save_img (bool): Save the SR images. Default: False.
        """
        dataset: Any = dataloader.dataset  # a basicsr dataset: its options, its length
        dataset_name = dataset.opt['name']
        metrics_opt = self.opt['val'].get('metrics') or {}
        reporting = save_img and not self.opt['is_train']  # a test run that saves its images gets a results page
        records = self._test_my_share(dataloader, current_iter, save_img, reporting)
        if not metrics_opt:
            return
        records = sorted((r for part in all_gather(records) for r in part), key=lambda r: r[0])
        self._average_metrics(records, dataset_name, current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        if self.opt['rank'] == 0:
            self.results.write(records, dataset_name, current_iter, self.metric_results, reporting, self.network_file)

    def _test_my_share(self, dataloader: DataLoader, current_iter, save_img: bool, reporting: bool) -> list[tuple]:
        """Run this rank's images (r, r + world_size, ...): each saved as asked, its metrics, its page entry.

        Returns:
            list[tuple]: ``(index, image name, {metric: value}, page entry or None)`` per image.
        """
        dataset: Any = dataloader.dataset
        dataset_name, metrics_opt = dataset.opt['name'], self.opt['val'].get('metrics') or {}
        rank, world_size = self.opt['rank'], self.opt['world_size']
        indices = list(range(rank, len(dataset), world_size))
        loader = DataLoader(
            Subset(dataset, indices),
            batch_size=1,
            shuffle=False,
            num_workers=dataloader.num_workers,
            collate_fn=dataloader.collate_fn,
        )
        pbar = tqdm(total=len(dataset), unit='image') if self.opt['val'].get('pbar') and rank == 0 else None
        records = []
        for index, val_data in zip(indices, loader):
            img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            metric_data, lq = self._test_one(val_data, keep_lq=reporting)
            if save_img:
                imwrite(metric_data['img'], self.results.image_path(dataset_name, img_name, current_iter))
            values = {name: float(calculate_metric(metric_data, opt_)) for name, opt_ in metrics_opt.items()}
            entry = None
            if reporting and lq is not None and 'img2' in metric_data:
                entry = self.results.page_entry(dataset_name, img_name, current_iter, metric_data, lq, metrics_opt)
            records.append((index, img_name, values, entry))
            if pbar:
                pbar.update(world_size)
                pbar.set_description(f'Test {img_name}')
        if pbar:
            pbar.close()
        return records

    def _test_one(self, val_data: dict, keep_lq: bool) -> tuple[dict, np.ndarray | None]:
        """The SR output (``img``) and the HR (``img2``, when given) of one sample as uint8 images; its input too."""
        self.feed_data(val_data)
        self.test()
        metric_data = {'img': tensor2img([self.output.detach().cpu()])}
        lq = tensor2img([self.lq.detach().cpu()]) if keep_lq else None
        if hasattr(self, 'gt'):
            metric_data['img2'] = tensor2img([self.gt.detach().cpu()])
            del self.gt
        del self.lq, self.output
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()
        return metric_data, lq

    def _average_metrics(self, records: list[tuple], dataset_name: str, current_iter) -> None:
        """``metric_results``: the means over every rank's images, summed in the dataset's order; the best ones."""
        self._initialize_best_metric_results(dataset_name)
        self.metric_results = {}
        for name in self.opt['val']['metrics']:
            total = 0.0
            for _, _, values, _ in records:  # summed in the dataset's order, as a one-process run sums
                total += values[name]
            self.metric_results[name] = total / len(records)
            self._update_best_metric_result(dataset_name, name, self.metric_results[name], current_iter)
