"""What a validation leaves on disk: SR images where basicsr puts them, the records, a test run's results page.

:class:`ResultsWriter` is what :class:`~wdsr_basicsr.models.wdsr_model.WDSRModel` calls once it has the
figures; it needs no model (only the run's options), so it is tested on its own.
"""

from __future__ import annotations

import logging
from os import path as osp

import numpy as np
from basicsr.metrics import calculate_metric

from ..utils import report
from ..utils.records import (
    forget_validations_after,
    record_validation,
    recorded_datasets,
    validation_rows,
    write_json,
)

logger = logging.getLogger('basicsr')

#: Where a training run appends its validations, in ``experiments/<name>/``: a JSON object per line.
VALIDATIONS_FILE = 'validation.jsonl'


class ResultsWriter:
    """The files of a run's validations.

    A training run records each validation's means in :data:`VALIDATIONS_FILE` (``iter``, ``dataset``,
    ``mean``; one row per iteration and set). A test run writes the per-image metrics to
    ``results/<name>/metrics_<set>.json`` and, when it saves its images, the results page
    ``results/<name>/index.html`` (:mod:`wdsr_basicsr.utils.report`).

    Args:
        opt (dict): The run's options (``is_train``, ``name``, ``scale``, ``path``, ``val``).
    """

    def __init__(self, opt: dict):
        self.opt = opt
        self.is_train = bool(opt['is_train'])
        self.path = opt['path']

    @property
    def record(self) -> str | None:
        """The training run's :data:`VALIDATIONS_FILE`, or None (a test run, a model built in process)."""
        root = self.path.get('experiments_root')
        return osp.join(root, VALIDATIONS_FILE) if self.is_train and root else None

    def forget_after(self, current_iter: int) -> None:
        """Drop the rows after ``current_iter``: a resumed run trains those iterations again."""
        if self.record:
            forget_validations_after(self.record, current_iter)

    def rows(self) -> list[dict]:
        """The training run's recorded validations (:func:`~wdsr_basicsr.utils.records.validation_rows`)."""
        return validation_rows(self.record) if self.record else []

    def recorded(self, current_iter: int) -> set[str]:
        """The sets that have a row at ``current_iter``."""
        return recorded_datasets(self.record, current_iter) if self.record else set()

    def image_path(self, dataset_name: str, img_name: str, current_iter) -> str:
        """Where basicsr's ``SRModel`` saves a validation image (training) or a test result."""
        folder = self.path['visualization']
        if self.is_train:
            return osp.join(folder, img_name, f'{img_name}_{current_iter}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(folder, dataset_name, f'{img_name}_{suffix}.png')

    def page_entry(
        self,
        dataset_name: str,
        img_name: str,
        current_iter,
        metric_data: dict,
        lq: np.ndarray,
        metrics_opt: dict,
    ) -> dict:
        """Save the HR and bicubic images of a test image for the results page; return its page entry."""
        results_root = self.path['results_root']
        folder = osp.join(results_root, 'report', dataset_name)
        bicubic, crop = report.save_references(
            folder, img_name, metric_data['img'], metric_data['img2'], lq, self.opt['scale']
        )
        bicubic_data = dict(metric_data, img=bicubic)
        return {
            'sr': osp.relpath(self.image_path(dataset_name, img_name, current_iter), results_root),
            'gt': osp.relpath(osp.join(folder, f'{img_name}_gt.png'), results_root),
            'bicubic': osp.relpath(osp.join(folder, f'{img_name}_bicubic.png'), results_root),
            'crop': crop,
            'bicubic_metrics': {
                name: float(calculate_metric(bicubic_data, opt_)) for name, opt_ in metrics_opt.items()
            },
        }

    def write(
        self,
        records: list[tuple],
        dataset_name: str,
        current_iter,
        mean: dict,
        reporting: bool,
        network: dict | None = None,
    ) -> None:
        """Training: the row of :data:`VALIDATIONS_FILE`. Testing: ``metrics_<set>.json``, the results page.

        Args:
            records (list[tuple]): ``(index, image name, {metric: value}, page entry or None)`` per image.
            dataset_name (str): The set.
            current_iter (int | str): The iteration (training) or the run's name (testing).
            mean (dict): ``{metric: mean}``.
            reporting (bool): Whether a test run's results page is written (it saved its images).
            network (dict | None): The tested network's file (``path``, ``best``), recorded by a test run.
                Default: None.
        """
        if self.record:
            record_validation(self.record, {'iter': current_iter, 'dataset': dataset_name, 'mean': mean})
        if self.is_train:
            return
        results_root = self.path['results_root']
        per_image = {name: values for _, name, values, _ in records}
        write_json(
            osp.join(results_root, f'metrics_{dataset_name}.json'),
            {'dataset': dataset_name, 'mean': mean, 'images': per_image} | ({'network': network} if network else {}),
        )
        if reporting:
            report.write_set_report(results_root, dataset_name, {name: e for _, name, _, e in records if e})
            page, _ = report.write_page({self.opt['name']: results_root}, results_root, self.opt['name'])
            logger.info(f'Results page with {dataset_name}: {page}')
