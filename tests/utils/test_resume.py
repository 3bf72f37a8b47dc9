"""Resume: every rank must find the same state."""

import pytest

from wdsr_basicsr.utils import resume


def test_ranks_that_find_different_states_stop_before_training(monkeypatch):
    monkeypatch.setattr(resume, 'find_resume_state', lambda opt: {'iter': 4})
    monkeypatch.setattr(resume, 'all_gather', lambda value: [value, None])  # rank 1 sees no experiments/ folder
    with pytest.raises(RuntimeError, match=r'rank 0: iteration 4, rank 1: nothing\); every rank must see the same'):
        resume.load_resume_state({})
    monkeypatch.setattr(resume, 'all_gather', lambda value: [value, value])
    assert resume.load_resume_state({}) == {'iter': 4}
