"""Sweeps: grid expansion, local and Ray executors, resume, retries, merge (issue 14)."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from xlt_bench.cli import main
from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import load_results
from xlt_bench.sweep.grid import load_sweep
from xlt_bench.sweep.run import sweep

GRID = """[run]
data = "synthetic"
limit = 16
langs = ["en", "th"]
tasks = ["xnli"]
batching = ["static", "dynamic"]

[sweep]
models = ["tiny-xlmr", "tiny-mbert"]
backends = ["fake"]
threads = [1, 2]
"""


def _grid(tmp_path, text=GRID):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _fake_cost(monkeypatch):
    monkeypatch.setenv("XLT_FAKE_COST", "fixed_ms=2,per_token_us=1")


def _keys(doc):
    return sorted((r["shard"], r["task"], r["lang"], r["backend"], r["batching"], r["n_batches"],
                   round(r["padding_waste"], 9)) for r in doc["rows"])


def test_grid_expands_to_shards(tmp_path):
    shards = load_sweep(_grid(tmp_path))
    assert len(shards) == 4 and len({s.id for s in shards}) == 4
    assert {(s.config.model, s.config.backends, s.config.threads) for s in shards} == {
        (m, ("fake",), t) for m in ("tiny-xlmr", "tiny-mbert") for t in (1, 2)}
    assert all(s.config.langs == ("en", "th") and s.config.batching == ("static", "dynamic") for s in shards)


@pytest.mark.parametrize("text,field", [
    (GRID.replace("threads = [1, 2]", "threads = [1, 2]\ncolour = [1]"), "sweep.colour"),
    (GRID.replace('models = ["tiny-xlmr", "tiny-mbert"]', 'models = "tiny-xlmr"'), "sweep.models"),
    (GRID.replace('models = ["tiny-xlmr", "tiny-mbert"]', "models = []"), "sweep.models"),
    (GRID.replace("threads = [1, 2]", "threads = [[1, 2]]"), "sweep.threads"),
    (GRID.replace("limit = 16", "limit = [16, 32]"), "limit"),
])
def test_bad_grids_name_the_key(tmp_path, text, field):
    with pytest.raises(InputError) as err:
        load_sweep(_grid(tmp_path, text))
    assert err.value.field == field and err.value.line is not None


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The grid swept once in this process (fake backend of known cost); tests that change it work on a copy."""
    root = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLT_FAKE_COST", "fixed_ms=2,per_token_us=1")
        grid = _grid(root)
        doc = sweep(str(grid), root / "out", say=lambda m: None)
    return grid, root / "out", doc


@pytest.mark.slow
def test_local_sweep_merges_and_resumes(tmp_path, local_sweep, capsys):
    grid, first, doc = local_sweep
    out = tmp_path / "out"
    shutil.copytree(first, out)
    merged = load_results(out)
    assert {s["status"] for s in merged["run"]["shards"]} == {"done"}
    per_shard = []
    for shard in merged["run"]["shards"]:
        rows = load_results(out / "shards" / shard["id"])["rows"]
        per_shard += [{**r, "shard": shard["id"]} for r in rows]
    assert _keys(doc) == _keys({"rows": per_shard}) and len(doc["rows"]) == 4 * 6
    assert all(r["host"] for r in doc["rows"])
    # Second invocation: nothing to run.
    again = sweep(str(grid), out, say=lambda m: None)
    assert {s["status"] for s in again["run"]["shards"]} == {"skipped (complete)"}
    # An interrupted sweep (one shard unfinished): only that shard runs.
    victim = merged["run"]["shards"][1]["id"]
    (out / "shards" / victim / "results.json").unlink()
    third = sweep(str(grid), out, say=lambda m: None)
    assert {s["id"]: s["status"] for s in third["run"]["shards"]}[victim] == "done"
    assert sum(s["status"] == "done" for s in third["run"]["shards"]) == 1
    assert _keys(third) == _keys(doc)
    # report renders each shard's report (one model on one host each) and sweep.md; compare and gate accept the
    # sweep directory as it is.
    (out / "sweep.md").unlink()
    assert main(["report", str(out)]) == 0
    assert all((out / "shards" / s["id"] / "report.md").exists() for s in merged["run"]["shards"])
    assert "÷ static" in (out / "sweep.md").read_text()
    # A copy with one shard's dynamic row of 'th' padding 10 points more: the gate must fail on exactly that row of
    # that shard (shards share task/lang/backend/batching; only the shard tells them apart); compare reads both.
    worse = json.loads((out / "results.json").read_text())
    victim_shard = merged["run"]["shards"][2]["id"]
    row = next(r for r in worse["rows"] if r["shard"] == victim_shard and r["lang"] == "th"
               and r["batching"] == "dynamic")
    row["padding_waste"] += 0.10
    (tmp_path / "worse").mkdir()
    (tmp_path / "worse" / "results.json").write_text(json.dumps(worse))
    capsys.readouterr()
    assert main(["gate", "--baseline", str(out), "--current", str(tmp_path / "worse"), "--json",
                 "--check", "padding_waste:0.01"]) == 1
    gated = json.loads(capsys.readouterr().out)["checks"]
    failed = [c["key"] for c in gated if c["status"] != "ok"]
    assert len(failed) == 1 and f"shard={victim_shard}" in failed[0] and "/th/" in failed[0]
    assert len(gated) == len(worse["rows"])            # every row of every shard was checked
    assert main(["gate", "--baseline", str(out), "--current", str(out), "--check", "padding_waste:0.01"]) == 0
    assert main(["compare", str(out), str(tmp_path / "worse"), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "compare.md").is_file()


@pytest.mark.slow
def test_a_shard_that_keeps_failing_is_listed_and_the_rest_merge(tmp_path, monkeypatch):
    from xlt_bench.sweep import executors
    grid = _grid(tmp_path)
    doomed = load_sweep(grid)[0].id
    calls = []
    monkeypatch.setattr(executors, "run_shard", _wrap(executors.run_shard, doomed, calls))
    doc = sweep(str(grid), tmp_path / "out", say=lambda m: None)
    status = {s["id"]: s for s in doc["run"]["shards"]}
    assert calls.count(doomed) == executors.RETRIES + 1 and status[doomed]["status"] == "failed"
    assert status[doomed]["attempts"] == executors.RETRIES + 1
    assert any(doomed in n and "disk on fire" in n for n in doc["run"]["notes"])
    assert {r["shard"] for r in doc["rows"]} == set(status) - {doomed} and len(doc["rows"]) == 3 * 6
    assert "disk on fire" in (tmp_path / "out" / "sweep.md").read_text()


@pytest.mark.slow
def test_process_pool_survives_a_dying_worker(tmp_path, monkeypatch):
    """--workers 2: the first worker to load a fake backend dies (os._exit), which breaks the pool; the shards it
    took down run again in a fresh pool, and every row arrives once."""
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv("XLT_FAKE_CRASH_ONCE", str(marker))
    grid = _grid(tmp_path, GRID.replace("threads = [1, 2]", "threads = [1]"))
    doc = sweep(str(grid), tmp_path / "out", workers=2, say=lambda m: None)
    assert marker.exists()
    assert [s["status"] for s in doc["run"]["shards"]] == ["done", "done"]
    assert len(doc["rows"]) == 2 * 6 and len(set(_keys(doc))) == 2 * 6


def _wrap(real, doomed, calls):
    def run_shard(config, directory, shard_id):
        calls.append(shard_id)
        if shard_id == doomed:
            raise RuntimeError("disk on fire")
        return real(config, directory, shard_id)
    return run_shard


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray cluster whose workers see the fake backend's cost and a crash-once marker: the first worker
    to load a fake backend dies (os._exit), as a lost worker would."""
    ray = pytest.importorskip("ray")
    marker = tmp_path_factory.mktemp("ray") / "crashed-once"
    env = {"XLT_FAKE_COST": "fixed_ms=2,per_token_us=1", "XLT_FAKE_CRASH_ONCE": str(marker)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield ray, marker
    ray.shutdown()


@pytest.mark.slow
def test_ray_sweep_equals_local_and_survives_a_dying_worker(tmp_path, ray_cluster, local_sweep):
    _, marker = ray_cluster
    grid, _, local = local_sweep
    on_ray = sweep(str(grid), tmp_path / "ray", executor="ray", say=lambda m: None)
    assert marker.exists()                       # one worker died loading its fake backend ...
    assert {s["status"] for s in on_ray["run"]["shards"]} == {"done"}   # ... and its shard was retried
    assert _keys(on_ray) == _keys(local)          # no lost or duplicated row, same partitions


def test_unreachable_address_fails_fast(tmp_path, capsys):
    pytest.importorskip("ray")
    start = time.perf_counter()
    code = main(["sweep", "--config", str(_grid(tmp_path)), "--executor", "ray", "--address", "127.0.0.1:9",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and time.perf_counter() - start < 10
    assert "cannot reach" in capsys.readouterr().err


def test_ray_missing_names_the_extra(tmp_path, monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert main(["sweep", "--config", str(_grid(tmp_path)), "--executor", "ray", "--out", str(tmp_path / "o")]) == 2
    assert "xlt-bench[ray]" in capsys.readouterr().err


def test_dry_run_measures_nothing(tmp_path, capsys):
    assert main(["sweep", "--config", str(_grid(tmp_path)), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "4 shard(s)" in err and "FLOP" in err and not (tmp_path / "o").exists()
    json.dumps(err)


def test_sweep_summary_divides_by_the_same_backends_static_row():
    from xlt_bench.sweep.merge import summary_markdown

    def row(backend, batching, tok_s):
        return dict(lang="ALL", shard="s1", task="xnli", model="mini-xlmr", backend=backend, dtype="fp32",
                    batching=batching, throughput_tok_s=tok_s, padding_waste=0.1)
    rows = [row("eager", "static", 100.0), row("eager", "dynamic", 200.0), row("onnxruntime", "static", 400.0),
            row("onnxruntime", "dynamic", 1000.0), row("fake", "dynamic", None)]
    text = summary_markdown([], rows)
    assert "| onnxruntime | fp32 | dynamic | 1,000 | 2.50× |" in text   # ÷ its own static (400), not eager's
    assert "| eager | fp32 | dynamic | 200 | 2.00× |" in text
    assert "| fake | fp32 | dynamic | — | — |" in text


@pytest.mark.slow
def test_two_workers_in_other_directories_merge_every_row(tmp_path, monkeypatch):
    """Workers that share no working directory with the driver (as a cluster's nodes): the sweep's relative --out
    lands in each worker's own directory, and every row still reaches the merge (returned with the result)."""
    from pathlib import Path

    from xlt_bench.sweep.executors import run_local
    from xlt_bench.sweep.merge import merge
    grid = _grid(tmp_path, GRID.replace("threads = [1, 2]", "threads = [1]"))
    shards = load_sweep(grid)
    (tmp_path / "driver").mkdir()
    (tmp_path / "workers").mkdir()
    monkeypatch.chdir(tmp_path / "driver")
    status: dict = {}
    run_local(shards, Path("out"), lambda shard, result: status.__setitem__(shard.id, result), workers=2,
              worker_cwd=str(tmp_path / "workers"))
    on_workers = {p.parent.name for p in (tmp_path / "workers").glob("worker-*/out/shards/*/results.json")}
    assert on_workers == {s.id for s in shards}                  # each shard ran in a worker's own directory
    assert not (tmp_path / "driver" / "out").exists()          # nothing reached the driver's disk
    doc = merge(shards, Path("out"), status, str(grid))
    assert {r["shard"] for r in doc["rows"]} == {s.id for s in shards} and len(doc["rows"]) == 2 * 6
    assert all((tmp_path / "driver" / "out" / "shards" / s.id / "results.json").is_file() for s in shards)


def test_a_finished_shard_whose_rows_are_nowhere_is_named_and_refused(tmp_path):
    from xlt_bench.sweep.merge import merge
    grid = _grid(tmp_path, GRID.replace("threads = [1, 2]", "threads = [1]"))
    shards = load_sweep(grid)
    with pytest.raises(InputError) as err:
        merge(shards, tmp_path / "out", {s.id: {"shard": s.id, "status": "done"} for s in shards}, str(grid))
    assert all(s.id in str(err.value) for s in shards) and "model=tiny-mbert" in str(err.value)
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["run"]["incomplete"] is True and {e["status"] for e in written["run"]["shards"]} == {"lost"}


def test_shards_without_threads_get_a_core_group_each(monkeypatch):
    from xlt_bench.sweep import executors

    class FakeRay:
        @staticmethod
        def nodes():
            return [{"Alive": True, "Resources": {"CPU": 8.0}}, {"Alive": True, "Resources": {"CPU": 4.0}},
                    {"Alive": False, "Resources": {"CPU": 2.0}}]
    assert executors._node_cpus(FakeRay) == 4                   # the smallest live node's cores
    seen = []
    monkeypatch.setattr(executors, "run_shard", lambda config, directory, shard_id, **kw: seen.append(kw) or
                        {"shard": shard_id, "status": "done"})
    unset, set_ = (load_sweep_text(t) for t in ("", "threads = [3]"))
    executors._attempt(unset, __import__("pathlib").Path("out"), threads=2)
    executors._attempt(set_, __import__("pathlib").Path("out"), threads=2)
    assert seen == [{"threads": 2}, {}]                        # a configured thread count is left alone


def load_sweep_text(extra: str):
    import tempfile
    from pathlib import Path
    text = GRID.replace("threads = [1, 2]", extra).replace('models = ["tiny-xlmr", "tiny-mbert"]',
                                                           'models = ["tiny-xlmr"]')
    path = Path(tempfile.mkdtemp()) / "sweep.toml"
    path.write_text(text)
    return load_sweep(path)[0]


@pytest.mark.slow
def test_resume_says_when_a_shard_was_measured_at_another_code_version(tmp_path, local_sweep):
    grid, first, _ = local_sweep
    out = tmp_path / "out"
    shutil.copytree(first, out)
    victim = load_results(out)["run"]["shards"][0]["id"]
    path = out / "shards" / victim / "results.json"
    doc = json.loads(path.read_text())
    doc["run"]["git_sha"], doc["run"]["git_dirty"] = "0123456789abcdef", False
    path.write_text(json.dumps(doc))
    said: list[str] = []
    again = sweep(str(grid), out, say=said.append)
    changed = [m for m in said if "code version 0123456789abcdef" in m]
    assert len(changed) == 1 and victim in changed[0]
    assert any("0123456789abcdef" in n for n in again["run"]["notes"])
