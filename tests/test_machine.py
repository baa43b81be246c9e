"""The machine line's CPU name."""

from pathlib import Path

from blob_lora import machine


def test_the_cpu_name_is_the_first_model_name_line_or_none(monkeypatch):
    text = {"/proc/cpuinfo": "processor\t: 0\nmodel name\t: Test CPU 9000\nmodel name\t: other\n"}

    def read_text(self, *a, **k):
        if str(self) not in text:
            raise OSError("no such file")
        return text[str(self)]

    monkeypatch.setattr(Path, "read_text", read_text)
    machine.cpu_name.cache_clear()
    assert machine.cpu_name() == "Test CPU 9000"
    machine.cpu_name.cache_clear()
    text.clear()
    assert machine.cpu_name() is None
    machine.cpu_name.cache_clear()
