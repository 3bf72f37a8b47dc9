"""The option reference and the JSON schema: made from the declarations, committed as made, read by editors."""

import copy
import importlib.util
import json

import jsonschema
import pytest

from helpers import OPTIONS, REPO
from wdsr_basicsr.archs.rdn_arch import RDN
from wdsr_basicsr.data.paired_dataset import CheckedPairedImageDataset
from wdsr_basicsr.declare import Rule
from wdsr_basicsr.models.wdsr_model import WDSRModel
from wdsr_basicsr.options import OptionError, check_options, load_options
from wdsr_basicsr.options.reference import docstring_args, reference, schema

SHIPPED = sorted(OPTIONS.rglob('*.yml'))


def make_reference():
    spec = importlib.util.spec_from_file_location('make_reference', REPO / 'scripts' / 'make_reference.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def errors(opt):
    return [e.message for e in jsonschema.Draft7Validator(schema()).iter_errors(json.loads(json.dumps(opt)))]


def test_the_committed_files_are_the_declarations():
    """docs/reference/options.md and the package's options.schema.json are what make_reference.py makes now."""
    module = make_reference()
    assert (REPO / module.REFERENCE).read_text() == reference()
    assert (REPO / module.SCHEMA).read_text() == module.schema_text()
    jsonschema.Draft7Validator.check_schema(schema())


def test_a_key_added_to_a_declaration_shows_up_in_both(monkeypatch):
    keys = copy.deepcopy(WDSRModel.option_keys)
    keys['train'] = {'warm_restarts': Rule('int', 2, 9, doc='Restarts of a made-up schedule.')}
    monkeypatch.setattr(WDSRModel, 'option_keys', keys)
    dataset_keys = copy.deepcopy(CheckedPairedImageDataset.option_keys)
    dataset_keys['']['crop_mode'] = Rule('str', words=('centre', 'random'), doc='Where a made-up crop is.')
    monkeypatch.setattr(CheckedPairedImageDataset, 'option_keys', dataset_keys)
    text = reference()
    assert '| `warm_restarts` | int | [2, 9] |  | Restarts of a made-up schedule. |' in text
    assert '| `crop_mode` | str | centre, random |  | Where a made-up crop is. |' in text
    train = schema()['properties']['train']['properties']['warm_restarts']
    assert train == {'type': 'integer', 'minimum': 2, 'maximum': 9, 'description': 'Restarts of a made-up schedule.'}
    dataset = schema()['properties']['datasets']['additionalProperties']['properties']['crop_mode']
    assert dataset['enum'] == ['centre', 'random']


def test_a_key_without_a_meaning_is_refused(monkeypatch):
    keys = copy.deepcopy(WDSRModel.option_keys)
    keys['val']['undocumented'] = Rule('bool')
    monkeypatch.setattr(WDSRModel, 'option_keys', keys)
    with pytest.raises(LookupError, match='val:undocumented has no meaning'):
        reference()


def test_a_network_keyword_reads_its_docstring():
    """RDN's Args as written in its docstring (by hand: the text before 'Default:')."""
    args = docstring_args(RDN.__doc__)
    assert args['growth'] == 'Growth rate (G).'
    assert args['img_range'] == "Inputs are normalised as `(x - rgb_mean) * img_range`, as BasicSR's EDSR does."
    assert '| `growth` | number |  | `64` | Growth rate (G). |' in reference()


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: str(p.relative_to(OPTIONS)))
def test_every_shipped_file_validates_and_names_the_schema(path):
    assert errors(load_options(str(path))) == []
    first = path.read_text().splitlines()[0]
    assert first.startswith('# yaml-language-server: $schema=')
    assert (path.parent / first.split('=', 1)[1]).resolve() == (REPO / make_reference().SCHEMA).resolve()


TYPOS = [
    ((), 'use_ampp', 'use_amp'),
    (('train',), 'ema_decayy', 'ema_decay'),
    (('datasets', 'train'), 'gt_szie', 'gt_size'),
    (('network_g',), 'num_feats', 'num_feat'),
    (('val',), 'val_freqq', 'val_freq'),
    (('logger',), 'print_fre', 'print_freq'),
    (('path',), 'strict_laod_g', 'strict_load_g'),
]


@pytest.mark.parametrize('section, typo, key', TYPOS, ids=lambda v: v if isinstance(v, str) else None)
def test_a_misspelt_key_is_flagged_by_the_schema_and_refused_by_the_check(section, typo, key):
    """The schema and the option check (an independent judge: the vocabulary, not the schema) agree."""
    opt = load_options(str(OPTIONS / 'train_wdsr_b_x2.yml'))
    parent = opt
    for part in section:
        parent = parent[part]
    parent[typo] = parent.pop(key, 1)
    assert any(repr(typo) in message for message in errors(opt)), errors(opt)
    with pytest.raises(OptionError, match=typo):
        check_options(opt, 'train.yml', is_train=True)


VALUES = [
    ((), 'num_gpu', -1),
    ((), 'use_compile', 'yes'),
    (('datasets', 'train'), 'sampling', 'area'),
    (('train',), 'ema_decay', 1.0),
    (('network_g',), 'norm', 'layer'),
    (('dist_params',), 'timeout_min', 0),
]


@pytest.mark.parametrize('section, key, value', VALUES, ids=lambda v: v if isinstance(v, str) else None)
def test_a_wrong_value_is_flagged_by_the_schema_and_refused_by_the_check(section, key, value):
    opt = load_options(str(OPTIONS / 'train_wdsr_b_x2.yml'))
    parent = opt
    for part in section:
        parent = parent.setdefault(part, {})
    parent[key] = value
    assert errors(opt)
    with pytest.raises(OptionError, match=key):
        check_options(opt, 'train.yml', is_train=True)
