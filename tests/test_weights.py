"""The weights cache: listing, sha256 verification, fetching (offline and from a local server)."""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from realtime import weights as weights_cache
from realtime.cli import main
from realtime.models import get_spec, load_parser
from realtime.models.registry import weight_files


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv(weights_cache.WEIGHTS_DIR_ENV, str(cache))
    return cache


@pytest.fixture
def tampered_cache(tmp_path, monkeypatch, weights_dir) -> Path:
    filename = get_spec("bodypix").weights.filename
    data = bytearray((weights_dir / filename).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / filename).write_bytes(bytes(data))
    monkeypatch.setenv(weights_cache.WEIGHTS_DIR_ENV, str(tmp_path))
    return tmp_path


def test_the_weights_cache_imports_nothing_from_the_models():
    probe = "import sys, realtime.weights; print(sorted(m for m in sys.modules if m.startswith('realtime.models')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


def test_weights_dir_follows_the_environment(empty_cache):
    assert weights_cache.weights_dir() == empty_cache


def test_list_shows_every_model_with_licence_and_status(capsys, weights_dir):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert str(weights_dir) in out
    for line in out.splitlines()[2:]:
        assert ("present" in line) or ("missing" in line)
    assert "bodypix " in out and "bodypix-s8" in out and "Apache-2.0" in out


def test_verify_passes_on_the_shared_weights(capsys):
    assert main(["weights", "verify"]) == 0
    assert "ok" in capsys.readouterr().out


def test_verify_flags_a_tampered_copy(tampered_cache, capsys):
    assert main(["weights", "verify"]) == 1
    captured = capsys.readouterr()
    assert "mismatch" in captured.out and "truncated or altered" in captured.out
    assert "failed the sha256 check" in captured.err
    assert "Traceback" not in captured.err


def test_loading_tampered_weights_is_refused(tampered_cache):
    with pytest.raises(weights_cache.WeightsError, match="sha256"):
        load_parser("bodypix", device="cpu")


def test_missing_weights_say_how_to_get_them(empty_cache):
    with pytest.raises(weights_cache.WeightsError) as error:
        load_parser("bodypix", device="cpu")
    message = str(error.value)
    assert "run 'partsight weights fetch bodypix'," in message and weights_cache.WEIGHTS_DIR_ENV in message


def test_fetch_offline_fails_with_one_line_naming_url_and_env(empty_cache, capsys):
    assert main(["weights", "fetch", "bodypix"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert get_spec("bodypix").weights.urls[0] in err
    assert weights_cache.WEIGHTS_DIR_ENV in err
    assert not list(empty_cache.iterdir()), "no partial file is left behind"


@pytest.fixture
def local_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


def test_fetch_downloads_checks_and_renames(local_server, empty_cache, weights_dir):
    root, url = local_server
    file = get_spec("bodypix").weights
    shutil.copy(weights_dir / file.filename, root / "model.onnx")
    seen = []
    path = weights_cache.fetch(replace(file, urls=(url + "model.onnx",)), progress=lambda d, t: seen.append(d))
    assert path == empty_cache / file.filename
    assert weights_cache.sha256_of(path) == file.sha256
    assert seen and seen[-1] == file.size_bytes
    assert sorted(p.name for p in empty_cache.iterdir()) == [file.filename]


def test_fetch_refuses_a_tampered_download(local_server, empty_cache, weights_dir):
    root, url = local_server
    file = get_spec("bodypix").weights
    (root / "model.onnx").write_bytes((weights_dir / file.filename).read_bytes()[:-100])
    with pytest.raises(weights_cache.WeightsError, match="sha256"):
        weights_cache.fetch(replace(file, urls=(url + "model.onnx",)))
    assert not list(empty_cache.iterdir())


MEDIAPIPE_NETWORKS = ("blazepose-detector", "blazepose-full", "selfie", "selfie-landscape")


def test_list_and_verify_cover_the_mediapipe_networks(capsys, weights_dir):
    from realtime.models.registry import NETWORK_SPECS

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in MEDIAPIPE_NETWORKS:
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert "Apache-2.0" in row and "present" in row and NETWORK_SPECS[name].weights.filename in row
    assert main(["weights", "verify"]) == 0
    out = capsys.readouterr().out
    for name in MEDIAPIPE_NETWORKS:
        assert f"ok        {weights_dir / NETWORK_SPECS[name].weights.filename}" in out


def test_fetch_offline_names_the_mediapipe_asset_url(empty_cache, capsys):
    from realtime.models.registry import get_network_spec

    assert main(["weights", "fetch", "blazepose-full"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "storage.googleapis.com/mediapipe-assets/pose_landmark_full.tflite" in err
    assert get_network_spec("blazepose-full").weights.urls[0] in err
    assert not list(empty_cache.iterdir())


def test_fetch_gets_a_mediapipe_network_from_a_server(local_server, empty_cache, weights_dir):
    from realtime.models.registry import get_network_spec

    root, url = local_server
    file = get_network_spec("selfie").weights
    shutil.copy(weights_dir / file.filename, root / "selfie_segmentation.tflite")
    path = weights_cache.fetch(replace(file, urls=(url + "selfie_segmentation.tflite",)))
    assert path == empty_cache / file.filename and weights_cache.sha256_of(path) == file.sha256


@pytest.mark.parametrize("folder, state", [("absent", "does not exist"), ("a-file", "is not a folder")])
def test_verify_and_list_say_when_the_folder_is_not_one(tmp_path, monkeypatch, capsys, folder, state):
    path = tmp_path / folder
    if folder == "a-file":
        path.write_bytes(b"")
    monkeypatch.setenv(weights_cache.WEIGHTS_DIR_ENV, str(path))
    assert main(["weights", "verify"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        f"partsight: error: the weights folder {path} {state} (set {weights_cache.WEIGHTS_DIR_ENV} to the folder "
        "holding the weights)\n")
    assert main(["weights", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        f"weights folder: {path} ({state})  (set {weights_cache.WEIGHTS_DIR_ENV} to change)"


def test_verify_of_an_empty_folder_says_there_is_nothing_to_verify(empty_cache, capsys):
    assert main(["weights", "verify"]) == 0
    files = len({file.filename for _licence, file in weight_files().values()})
    assert capsys.readouterr().out == (f"nothing to verify: none of the {files} weights files is in {empty_cache} "
                                       "(see 'partsight weights list')\n")


def test_a_file_of_the_wrong_size_is_not_listed_as_present(empty_cache, weights_dir, capsys):
    bodypix, m2fp = get_spec("bodypix").weights, get_spec("m2fp-lip").weights
    (empty_cache / bodypix.filename).write_bytes(b"")
    (empty_cache / m2fp.filename).write_bytes(b"")  # no published size: a zero-byte file is still no checkpoint
    shutil.copy(weights_dir / get_spec("bodypix-s8").weights.filename, empty_cache)
    assert main(["weights", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert f"  wrong size  {empty_cache / bodypix.filename} (0 bytes, not {bodypix.size_bytes}: truncated or " \
           "another file)" in rows["bodypix"]
    assert rows["m2fp-lip"].endswith(f"  empty       {empty_cache / m2fp.filename} (0 bytes)")
    assert "  present     " in rows["bodypix-s8"]
    assert main(["weights", "verify"]) == 1
    files = len({file.filename for _licence, file in weight_files().values()})
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"checked 3 of {files} weights files in {empty_cache}: 1 ok, 1 mismatch, 1 unpinned; {files - 3} missing"


def _fetch_bodypix(weights_folder: Path) -> subprocess.CompletedProcess:
    """`partsight weights fetch bodypix` run as a command with the weights folder `weights_folder`
    (offline here: the download fails)."""
    return subprocess.run([sys.executable, str(Path(__file__).parents[1] / "main.py"), "weights", "fetch", "bodypix"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, weights_cache.WEIGHTS_DIR_ENV: str(weights_folder)})


def test_fetch_into_a_file_says_what_verify_says(tmp_path):
    """A weights folder that is a file: verify's words, not "[Errno 17] File exists"."""
    file = tmp_path / "afile"
    file.write_text("x\n")
    done = _fetch_bodypix(file)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"partsight: error: the weights folder {file} is not a folder (set "
                           f"{weights_cache.WEIGHTS_DIR_ENV} to the folder holding the weights)\n")
    inside = _fetch_bodypix(file / "sub")
    assert inside.returncode == 1 and inside.stderr.startswith(
        f"partsight: error: cannot create the weights folder {file / 'sub'}: Not a directory (set "), inside.stderr
    assert len(inside.stderr.splitlines()) == 1 and file.read_text() == "x\n"


def test_a_failed_fetch_leaves_no_folder_it_made(tmp_path):
    (tmp_path / "kept").mkdir()
    done = _fetch_bodypix(tmp_path / "kept" / "typo" / "sub")
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("partsight: error: could not download bodypix"), done.stderr
    assert [path.name for path in tmp_path.rglob("*")] == ["kept"]
