"""`vton weights` and `--download-weights`, against a local HTTP server on 127.0.0.1 serving files made here.

The table's URLs are pointed at that server and its expected hashes computed (with hashlib) from the files served;
every socket this module opens must go to 127.0.0.1 (`local_only`), so nothing reaches another address.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
from click.testing import CliRunner

from tests._reports_fixtures import one_line_error
from tests.eval_fixtures import make_dataset, make_results, save_random_vgg16_features
from vton.cli import main
from vton.core import weight_files as wf
from vton.eval import networks
from vton.eval.protocols import PROTOCOLS
from vton.eval.registry import METRICS, NETWORKS
from vton.eval.settings import Settings
from vton.workflows import weights as ww


class FileServer:
    """Serves ``files`` (URL path -> bytes) with HTTP ``Range`` support (``ranges`` False: ignored, as by a server
    without it); ``cut[path] = n`` sends the full length header but only ``n`` bytes, then drops the connection,
    once. ``content_range``: sent instead of the true Content-Range of a 206; ``gzip``: bodies gzip-compressed
    (Content-Encoding, and Content-Length counting the compressed bytes) whatever Accept-Encoding says. ``log``:
    (path, Range header) of every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ranges = True
        self.content_range: str | None = None
        self.gzip = False
        self.log: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = unquote(urlsplit(self.path).path)
                asked = self.headers.get("Range")
                owner.log.append((path, asked))
                data = owner.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(re.fullmatch(r"bytes=(\d+)-", asked)[1]) if asked and owner.ranges else 0
                if start >= len(data) > 0:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start or (asked and owner.ranges) else 200)
                if asked and owner.ranges:
                    self.send_header("Content-Range",
                                     owner.content_range or f"bytes {start}-{len(data) - 1}/{len(data)}")
                body = data[start:]
                if owner.gzip:
                    body = gzip.compress(body, mtime=0)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:owner.cut.pop(path, len(body))])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def paths(self) -> list[str]:
        return [path for path, _ in self.log]


@pytest.fixture(autouse=True)
def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to another address than 127.0.0.1 fails the test; proxies from the environment are off."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        assert isinstance(address, tuple) and address[0] == "127.0.0.1", f"connection to {address}"
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", ww.wf.MIRROR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def content(key: str, size: int = 200_000) -> bytes:
    """Distinct bytes per file, fixed by its key."""
    return hashlib.shake_256(key.encode()).digest(size)


def serve_table(monkeypatch: pytest.MonkeyPatch, server: FileServer, data: dict[str, bytes] | None = None,
                folder: str = "/official/") -> dict[str, bytes]:
    """Point every row's URL at ``server``'s /official/ folder, serve its file (``data[key]`` or `content`) in
    ``folder``, and expect the first 8 hex digits of that file's SHA-256 (torch.hub's rule; None stays None)."""
    files = {row.key: (data or {}).get(row.key) or content(row.key) for row in wf.FILES}
    rows = []
    for row in wf.FILES:
        server.files[folder + row.filename] = files[row.key]
        expected = hashlib.sha256(files[row.key]).hexdigest()[:8] if row.sha256 else None
        rows.append(dataclasses.replace(row, url=f"{server.url}/official/{row.filename}", sha256=expected))
    monkeypatch.setattr(wf, "FILES", tuple(rows))
    monkeypatch.setattr(wf, "BY_KEY", {r.key: r for r in rows})
    monkeypatch.setattr(wf, "BY_FILENAME", {r.filename: r for r in rows})
    return files


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


# --- the table ------------------------------------------------------------------------------------------------
def test_the_table_holds_the_libraries_own_files() -> None:
    """URLs and sizes as the libraries publish them; the hash prefix as torch.hub reads it from the name."""
    import cleanfid.downloads_helper
    import pytorch_fid.inception
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity
    from torchvision import models as tvm

    torchvision = {"alexnet": tvm.AlexNet_Weights.IMAGENET1K_V1, "vgg16": tvm.VGG16_Weights.IMAGENET1K_V1,
                   "vgg19": tvm.VGG19_Weights.IMAGENET1K_V1, "squeezenet1_1": tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1,
                   "inception-imagenet": tvm.Inception_V3_Weights.IMAGENET1K_V1}
    for key, weights in torchvision.items():
        assert (wf.BY_KEY[key].url, wf.BY_KEY[key].size_mb) == (weights.url, weights.meta["_file_size"])
    assert wf.BY_KEY["inception-fidelity"].url == fidelity.URL_INCEPTION_V3
    assert wf.BY_KEY["inception-pytorch-fid"].url == pytorch_fid.inception.FID_WEIGHTS_URL
    assert wf.BY_KEY["inception-cleanfid"].url == cleanfid.downloads_helper.inception_url
    openpifpaf = pytest.importorskip("openpifpaf")
    official = openpifpaf.CHECKPOINT_URLS["shufflenetv2k16"]  # http:// "to avoid SSL issues on Windows"
    assert wf.BY_KEY["openpifpaf"].url.split("://")[1] == official.split("://")[1]
    for row in wf.FILES:
        assert row.url.rsplit("/", 1)[1] == row.filename
        if row.sha256 is not None:
            assert row.sha256 == torch.hub.HASH_REGEX.search(row.filename).group(1)
    assert wf.BY_KEY["inception-cleanfid"].sha256 is None  # "-05." is a date, not a hash


def test_every_network_loads_its_row_and_says_how_to_fetch_it(hub: Path) -> None:
    """Each network a metric or protocol row names has one file, which its loader asks for by that name, and the
    missing-file message names the exact command; so do the VGG19 loss and openpifpaf's default model."""
    from vton.models.losses import VGGLoss
    from vton.pipelines.keypoints.pifpaf import PoseModelError, resolve_checkpoint

    named = set(NETWORKS) | {n for p in PROTOCOLS.values() for r in p.rows for n in r.networks}
    loaders = {**networks.LOADERS, **networks.PROTOCOL_LOADERS, **networks.FEATURE_LOADERS}
    assert named == set(loaders)
    for name in sorted(named):
        row = wf.using(name)
        args = (Settings(), torch.device("cpu")) if name in networks.FEATURE_LOADERS else (Settings(),)
        with pytest.raises(networks.weights.MissingWeightsError) as info:
            loaders[name](*args)
        assert f"missing weights file {row.filename}: put it in {hub}" in str(info.value)
        assert f"run `vton weights download {row.key}`" in str(info.value)
    with pytest.raises(networks.weights.MissingWeightsError, match="run `vton weights download vgg19`"):
        VGGLoss()
    with pytest.raises(PoseModelError, match="run `vton weights download openpifpaf`"):
        resolve_checkpoint(None)


def test_for_names_the_files_each_run_loads() -> None:
    """--for and --download-weights resolve to the files of the README's protocol table."""
    def keys(rows: list[wf.WeightFile]) -> set[str]:
        return {r.key for r in rows}

    assert keys(ww.rows_for("evaluate")) == keys(ww.rows_for("vton")) == {"alexnet", "vgg16", "inception-fidelity"}
    assert keys(ww.rows_for("ladi-vton")) == {"alexnet", "inception-cleanfid", "inception-fidelity"}
    assert keys(ww.rows_for("catvton")) == {"squeezenet1_1", "inception-cleanfid"}
    assert keys(ww.rows_for("hr-viton")) == {"alexnet", "inception-imagenet"}
    assert keys(ww.rows_for("cit")) == {"alexnet", "inception-fidelity"}
    assert keys(ww.rows_for("vtoneval")) == {"squeezenet1_1", "inception-cleanfid", "inception-pytorch-fid"}
    assert keys(ww.rows_for("train")) == {"vgg19"} and keys(ww.rows_for("keypoints")) == {"openpifpaf"}
    assert keys(ww.rows_for("all")) == set(wf.BY_KEY)
    assert keys(ww.rows_for_evaluate(["vton"], ["ssim", "dists"])) == {"vgg16"}
    assert keys(ww.rows_for_evaluate(["vton", "catvton"], ["ssim"])) == {"squeezenet1_1", "inception-cleanfid"}
    assert keys(ww.rows_for_train("tom", 1.0, None)) == {"vgg19"}
    assert ww.rows_for_train("tom", 0.0, None) == ww.rows_for_train("tom", 1.0, "mine.pth") == []
    assert ww.rows_for_train("gmm", 1.0, None) == []
    assert ww.rows_for_keypoints("mine.pkl") == [] and keys(ww.rows_for_keypoints(None)) == {"openpifpaf"}
    lpips_metrics = [m.name for m in METRICS if "lpips" in m.networks]
    assert ww.needed_by(wf.BY_KEY["alexnet"]).startswith(f"metrics {', '.join(lpips_metrics)}; protocols vton")


# --- download ---------------------------------------------------------------------------------------------------
def test_download_places_the_verified_file_once(hub: Path, server: FileServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    files = serve_table(monkeypatch, server)
    code, out = run("weights", "download", "alexnet", wf.BY_KEY["squeezenet1_1"].filename)
    assert code == 0, out
    for key in ("alexnet", "squeezenet1_1"):
        assert (hub / wf.BY_KEY[key].filename).read_bytes() == files[key]
        assert hashlib.sha256(files[key]).hexdigest() in out
    assert sorted(p.name for p in hub.iterdir()) == sorted([wf.BY_KEY["alexnet"].filename,
                                                            wf.BY_KEY["squeezenet1_1"].filename])  # no part, no lock
    code, out = run("weights", "download", "alexnet")
    assert code == 0 and "already there, verified" in out and len(server.log) == 2  # nothing fetched again


def test_a_file_another_process_is_fetching_does_not_stop_the_others(hub: Path, server: FileServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from vton.core.io import exclusive_lock

    files = serve_table(monkeypatch, server)
    alexnet = wf.BY_KEY["alexnet"].filename
    hub.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(hub / f".{alexnet}.lock"):  # as a second `vton weights download` would hold it
        message = one_line_error(CliRunner().invoke(main, ["weights", "download", "alexnet", "squeezenet1_1"]))
    assert "1 of 2 weight files not fetched" in message and "another process" in message
    assert not (hub / alexnet).exists()
    assert (hub / wf.BY_KEY["squeezenet1_1"].filename).read_bytes() == files["squeezenet1_1"]


def test_a_cut_download_resumes_where_it_stopped(hub: Path, server: FileServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    files = serve_table(monkeypatch, server)
    row = wf.BY_KEY["vgg16"]
    server.cut[f"/official/{row.filename}"] = 70_000
    message = one_line_error(CliRunner().invoke(main, ["weights", "download", "vgg16"]))
    assert "got 70000 of 200000 bytes" in message and "run the same command again to resume" in message
    part = hub / f"{row.filename}.part"
    assert part.read_bytes() == files["vgg16"][:70_000] and not (hub / row.filename).exists()
    assert "missing (0.1 MB downloaded, resumes)" in run("weights", "list", "vgg16")[1]
    code, out = run("weights", "download", "vgg16")
    assert code == 0, out
    assert (hub / row.filename).read_bytes() == files["vgg16"] and not part.exists()
    assert server.log[-1] == (f"/official/{row.filename}", "bytes=70000-")  # only the rest was asked for


@pytest.mark.parametrize("case", ["server without ranges", "part longer than the file"])
def test_a_part_the_server_cannot_continue_is_replaced(case: str, hub: Path, server: FileServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    files = serve_table(monkeypatch, server)
    row = wf.BY_KEY["vgg16"]
    hub.mkdir(parents=True)
    if case == "server without ranges":
        server.ranges = False
        (hub / f"{row.filename}.part").write_bytes(b"x" * 1000)
    else:
        (hub / f"{row.filename}.part").write_bytes(files["vgg16"] + b"trailing")
    code, out = run("weights", "download", "vgg16")
    assert code == 0, out
    assert (hub / row.filename).read_bytes() == files["vgg16"] and not (hub / f"{row.filename}.part").exists()


@pytest.mark.parametrize("case", ["unreadable Content-Range", "compressed range"])
def test_a_range_whose_place_is_unknown_keeps_the_part(case: str, hub: Path, server: FileServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A 206 whose offsets cannot be read (a malformed Content-Range, or a gzip-encoded body, whose ranges count
    compressed bytes) is refused in one line; the part already there stays as it was, and resumes later."""
    files = serve_table(monkeypatch, server)
    row = wf.BY_KEY["vgg16"]
    part = hub / f"{row.filename}.part"
    hub.mkdir(parents=True)
    part.write_bytes(files["vgg16"][:70_000])
    if case == "unreadable Content-Range":
        server.content_range = "bytes 70000-199999"  # no "/size"
    else:
        server.gzip = True
    message = one_line_error(CliRunner().invoke(main, ["weights", "download", "vgg16"]))
    want = "unreadable Content-Range 'bytes 70000-199999'" if case == "unreadable Content-Range" else \
        "a gzip-encoded range"
    assert want in message and "nothing was written" in message
    assert part.read_bytes() == files["vgg16"][:70_000] and not (hub / row.filename).exists()
    server.content_range, server.gzip = None, False
    assert run("weights", "download", "vgg16")[0] == 0
    assert (hub / row.filename).read_bytes() == files["vgg16"] and server.log[-1][1] == "bytes=70000-"


def test_a_whole_file_sent_compressed_lands_decoded(hub: Path, server: FileServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that gzips despite ``Accept-Encoding: identity``: the file is the decoded bytes (its hash checks),
    not refused because Content-Length counted the compressed ones."""
    files = serve_table(monkeypatch, server, data={"alexnet": bytes(200_000)})  # compresses to a few hundred bytes
    server.gzip = True
    code, out = run("weights", "download", "alexnet")
    assert code == 0, out
    assert (hub / wf.BY_KEY["alexnet"].filename).read_bytes() == files["alexnet"]


def test_a_wrong_file_never_lands_and_is_not_resumed_from(hub: Path, server: FileServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    files = serve_table(monkeypatch, server)
    row = wf.BY_KEY["alexnet"]
    corrupt = bytearray(files["alexnet"])
    corrupt[123_456] ^= 1
    server.files[f"/official/{row.filename}"] = bytes(corrupt)
    message = one_line_error(CliRunner().invoke(main, ["weights", "download", "alexnet"]))
    assert f"expected SHA-256 {row.sha256}..., got {hashlib.sha256(corrupt).hexdigest()}" in message
    assert not (hub / row.filename).exists() and not (hub / f"{row.filename}.part").exists()
    # a part holding wrong bytes: the finished file fails the check and is deleted; the next try starts afresh
    server.files[f"/official/{row.filename}"] = files["alexnet"]
    stale = bytes(1000)  # 1000 bytes that are not the file's first ones
    assert stale != files["alexnet"][:1000]
    (hub / f"{row.filename}.part").write_bytes(stale)
    assert "got " + hashlib.sha256(stale + files["alexnet"][1000:]).hexdigest() in one_line_error(
        CliRunner().invoke(main, ["weights", "download", "alexnet"]))
    assert not (hub / f"{row.filename}.part").exists()
    assert run("weights", "download", "alexnet")[0] == 0
    assert (hub / row.filename).read_bytes() == files["alexnet"]


def test_a_mirror_serves_the_same_names(hub: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """--mirror and $VTON_WEIGHTS_MIRROR: every file from the mirror folder; the publishers' URLs are not asked."""
    files = serve_table(monkeypatch, server, folder="/mirror/weights/")  # nothing at the publishers' URLs
    code, out = run("weights", "download", "--for", "catvton", "--mirror", server.url + "/mirror/weights")
    assert code == 0, out
    assert f"no published hash to check; SHA-256 {hashlib.sha256(files['inception-cleanfid']).hexdigest()}" in out
    monkeypatch.setenv(wf.MIRROR_ENV, server.url + "/mirror/weights/")
    code, out = run("weights", "download", "openpifpaf")
    assert code == 0, out
    for key in ("squeezenet1_1", "inception-cleanfid", "openpifpaf"):
        assert (hub / wf.BY_KEY[key].filename).read_bytes() == files[key]
    assert all(path.startswith("/mirror/weights/") for path in server.paths()) and len(server.log) == 3
    monkeypatch.setenv(wf.MIRROR_ENV, "ftp://example.org/weights")
    assert "must be an http:// or https:// folder URL" in one_line_error(
        CliRunner().invoke(main, ["weights", "download", "vgg19"]))
    assert len(server.log) == 3


# --- list, verify, import -------------------------------------------------------------------------------------
def test_list_and_verify_tell_verified_wrong_unverified_and_missing(hub: Path, server: FileServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    files = serve_table(monkeypatch, server)
    hub.mkdir(parents=True)
    (hub / wf.BY_KEY["alexnet"].filename).write_bytes(files["alexnet"])
    (hub / wf.BY_KEY["vgg16"].filename).write_bytes(b"random test weights")
    (hub / wf.BY_KEY["inception-cleanfid"].filename).write_bytes(b"some TorchScript file")
    code, out = run("weights", "list")
    assert code == 0
    blocks = {b.split(":", 1)[0]: b for b in out.split("\n") if b and not b.startswith(" ")}
    assert set(blocks) == {"weights folder", *wf.BY_KEY}
    status = dict(re.findall(r"^(\S+): .*\n  status:    (.*)$", out, re.M))
    assert status["alexnet"].startswith("verified")
    assert status["vgg16"].startswith(f"WRONG HASH: expected SHA-256 {wf.BY_KEY['vgg16'].sha256}..., got "
                                      f"{hashlib.sha256(b'random test weights').hexdigest()}")
    assert status["inception-cleanfid"].startswith(
        f"present, no published hash to check; SHA-256 {hashlib.sha256(b'some TorchScript file').hexdigest()}")
    assert status["vgg19"] == "missing"
    code, out = run("weights", "verify")
    assert code == 1 and "vgg16: WRONG HASH" in out and "vgg19: missing" in out
    assert run("weights", "verify", "alexnet", "inception-cleanfid")[0] == 0
    assert run("weights", "verify", "alexnet", "vgg19")[0] == 1  # a named file that is missing
    assert server.log == []  # listing and verifying never touch the network


def test_import_copies_a_file_in_by_its_hash_or_name(hub: Path, server: FileServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    same = content("inception")  # torch-fidelity's and pytorch-fid's files share their hash prefix, as here
    files = serve_table(monkeypatch, server, {"inception-fidelity": same, "inception-pytorch-fid": same})
    mine = tmp_path / "my-alexnet.pth"
    mine.write_bytes(files["alexnet"])
    code, out = run("weights", "import", str(mine))
    assert code == 0, out
    assert (hub / wf.BY_KEY["alexnet"].filename).read_bytes() == files["alexnet"]
    wrong = tmp_path / wf.BY_KEY["vgg19"].filename
    wrong.write_bytes(b"not vgg19")
    message = one_line_error(CliRunner().invoke(main, ["weights", "import", str(wrong)]))
    assert f"expected SHA-256 {wf.BY_KEY['vgg19'].sha256}..., got {hashlib.sha256(b'not vgg19').hexdigest()}" in message
    assert sorted(p.name for p in hub.iterdir()) == [wf.BY_KEY["alexnet"].filename]  # nothing else landed
    ambiguous = tmp_path / "inception.pth"
    ambiguous.write_bytes(same)
    assert "matches inception-fidelity and inception-pytorch-fid; name it with --as" in one_line_error(
        CliRunner().invoke(main, ["weights", "import", str(ambiguous)]))
    assert run("weights", "import", str(ambiguous), "--as", "inception-pytorch-fid")[0] == 0
    assert (hub / wf.BY_KEY["inception-pytorch-fid"].filename).read_bytes() == same
    unknown = tmp_path / "model.pt"
    unknown.write_bytes(b"whatever")
    assert "matches no published file" in one_line_error(CliRunner().invoke(main, ["weights", "import", str(unknown)]))
    assert server.log == []


# --- --download-weights on the runs ------------------------------------------------------------------------------
def test_evaluate_and_keypoints_fetch_only_what_they_need(hub: Path, server: FileServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    vgg = save_random_vgg16_features(tmp_path / "made").read_bytes()
    files = serve_table(monkeypatch, server, {"vgg16": vgg})
    persons = make_dataset(tmp_path / "data", n=3)
    make_results(tmp_path / "results", tmp_path / "data", persons)
    code, out = run("evaluate", str(tmp_path / "data"), "--results", str(tmp_path / "results"), "--out",
                    str(tmp_path / "run"), "--metrics", "ssim,dists", "--device", "cpu", "--workers", "0",
                    "--download-weights")
    assert code == 0, out
    assert server.paths() == [f"/official/{wf.BY_KEY['vgg16'].filename}"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "paired/dists" in summary["metrics"] and summary["missing_weights"] == []
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"")
    code, out = run("keypoints", str(images), str(tmp_path / "kp"), "--download-weights")
    fetched, refused = out.strip().splitlines()  # fetched, then not unpickled without the user's word
    assert code == 1 and fetched.startswith("weights: ") and "--trust-checkpoint" in refused
    assert (hub / wf.BY_KEY["openpifpaf"].filename).read_bytes() == files["openpifpaf"]
    assert len(server.log) == 2
