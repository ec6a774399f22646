"""Inputs as cameras, phones, editors and web servers hand them over (PARTSIGHT_MEDIA_DIR/faults,
see its README) and other members of the same kinds made here with PyAV: each is processed as a
player shows it — upright, timed from 0, every frame, with its sound — and never leaks credentials."""
from __future__ import annotations

import socket

import pytest

from realtime.cli import main
from realtime.sources import redact_url

PASSWORDS = ("p@ss:w0rd", "s3cr/et", "p%40ss", "a:b@c/d%2Fe")


@pytest.fixture(scope="session")
def faults(media_dir):
    return media_dir / "faults"


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("scheme", ["rtsp", "http", "rtmp"])
def test_the_whole_user_info_is_redacted(scheme, password):
    url = f"{scheme}://coach:{password}@127.0.0.1:8554/clip"
    for text in (f"cannot open {url}: refused", f"'{url}'", f"({url})", f"{url} and {url}"):
        shown = redact_url(text)
        assert "coach" not in shown and password not in shown and "w0rd" not in shown and "et@" not in shown
        assert shown.count(f"{scheme}://***@127.0.0.1:8554/clip") == text.count("://")
    assert redact_url("rtsp://127.0.0.1/clip") == "rtsp://127.0.0.1/clip"


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_credentials_of_a_camera_that_refuses_stay_out_of_errors_and_logs(scheme, password, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("PARTSIGHT_LOG_FILE", str(tmp_path / "partsight.log"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    assert main(["process", f"{scheme}://coach:{password}@127.0.0.1:{port}/clip", "-o", str(tmp_path / "x.mp4"),
                 "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"partsight: error: cannot open {scheme}://***@127.0.0.1:{port}/clip")
    log_text = (tmp_path / "partsight.log").read_text() if (tmp_path / "partsight.log").exists() else ""
    for text in (captured.out, captured.err, log_text):
        assert password not in text and "coach" not in text
        assert password.replace("%40", "@") not in text  # nor the password decoded
