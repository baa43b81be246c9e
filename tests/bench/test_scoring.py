"""The machine line every bench result carries."""

import torch

from bench import scoring


def test_the_machine_line_counts_threads_in_words(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert ", 1 thread, torch " in scoring.machine()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert ", 2 threads, torch " in scoring.machine()
