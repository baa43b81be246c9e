import os

import pytest

from blob_lora.atomic import atomic_path, write_text_atomic


def test_an_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path):
    target = tmp_path / "sub" / "results.json"
    write_text_atomic(target, "old")
    assert target.read_text() == "old"
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)  # not mkstemp's owner-only
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]  # no leftover
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
