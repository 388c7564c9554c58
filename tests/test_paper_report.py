"""The TVO paper's document (``benchmarks/paper_report.py``): the claim-1 bounds are ordered as
the theory says, and the document's numbers are the runs' own."""

import json
import statistics
import sys
from pathlib import Path

import pytest

from tvo.config import ConfigError
from tvo.sweep import load

from tests.helpers import write_sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import paper_report


@pytest.fixture(scope="module")
def with_bounds(finished):
    """The tiny sweep with its claim-1 evaluation (``bounds.json``) computed."""
    loaded, out = finished
    paper_report.bounds(loaded, out)
    return loaded, out


def test_bounds_are_ordered_as_the_theory_says(with_bounds):
    _, out = with_bounds
    b = json.loads((out / "bounds.json").read_text())
    g = b["integrand"]
    assert all(lo <= hi + 1e-9 for lo, hi in zip(g, g[1:]))  # ĝ rises with β
    assert g[0] <= b["iwae"]["10"] <= b["log_px"] <= g[-1]  # ELBO ≤ IWAE_10 ≤ log p̂ ≤ EUBO


def test_the_report_is_built_from_the_runs(with_bounds, tmp_path):
    loaded, out = with_bounds
    cost = tmp_path / "cost.jsonl"
    rows = [{"model": "linear_2", "objective": "tvo", "S": 2, "K": k, "batch": 24,
             "ms_per_step": ms} for k, ms in ((2, 1.0), (50, 1.2))]  # fmt: skip
    cost.write_text("".join(json.dumps(r) + "\n" for r in rows))
    document = paper_report.write(loaded, out, tmp_path / "docs" / "RESULTS.md", cost)
    text = document.read_text()
    finals = [json.loads((out / n / "final.json").read_text())
              for n in loaded.experiments["sbn"] if "-vimco-" in n]  # fmt: skip
    values = [f["log_px"] for f in finals]
    expected = f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"
    assert f"| discrete_toy S=10 vimco | 2 | {expected} |" in text
    for heading in ("Claim 1", "Claim 2", "Claim 3", "Claim 4", "β1 × K grid"):
        assert f"## {heading}" in text or heading in text
    assert "1.20 |" in text and "1.20× as much, while K grows 25-fold" in text
    for png in ("bounds", "sbn_curves", "sbn_grid_curves", "continuous_curves", "cost_against_k"):
        assert (tmp_path / "docs" / "images" / "results" / f"{png}.png").stat().st_size > 1000
        assert f"(images/results/{png}.png)" in text


def test_the_bounds_run_must_be_one_of_the_sweep(tmp_path, tiny_data):
    sweep = load(
        write_sweep(
            tmp_path, tiny_data, '[[experiment]]\nname = "a"\n[report.bounds]\nrun = "nope"'
        )
    )
    with pytest.raises(ConfigError, match=r"\[report.bounds\] run must name a run"):
        paper_report.bounds(sweep, tmp_path)


def test_the_ais_section_comes_from_the_ais_benchmark(with_bounds, tmp_path, monkeypatch):
    """``benchmarks/ais_eval.py`` (with its rows cut down, on the tiny sweep's discrete and
    linear-Gaussian runs) writes the JSON whose numbers the AIS table shows; without the file
    the document has no AIS section, and the paper-code differences are there either way."""
    import ais_eval

    from tvo.evaluate.kernels import HMC, FlipMH

    loaded, out = with_bounds
    toy = next(out / n for n in loaded.runs if n.startswith("discrete_toy-tvo-"))
    gauss = next(out / n for n in loaded.runs if n.startswith("linear_gaussian-tvo-"))
    monkeypatch.setattr(ais_eval, "SBN_ROWS", [("flip", FlipMH(1), 5, 3)])
    monkeypatch.setattr(ais_eval, "SBN_BDMC", [("flip", FlipMH(1), 4, 2)])
    monkeypatch.setattr(ais_eval, "VAE_ROWS", [("hmc L=2", HMC(leapfrog_steps=2), 5, 3)])
    monkeypatch.setattr(ais_eval, "VAE_BDMC", [("hmc L=2", HMC(leapfrog_steps=2), 4, 2)])
    file = tmp_path / "ais.json"
    assert ais_eval.main(["--sbn", str(toy), "--vae", str(gauss), "--images", "4",
                          "--bdmc-data", "3", "--out", str(file)]) == 0  # fmt: skip
    record = json.loads(file.read_text())
    toy_rows = record["models"]["sbn"]["rows"]
    assert [r["method"] for r in toy_rows] == ["iwae", "ais"] and toy_rows[1]["evaluations"] == 15
    # HMC: 20 warm-up moves, then 2 moves at each of 4 steps, 2 leapfrog steps a move, 3 chains
    assert record["models"]["vae"]["rows"][1]["gradients"] == 3 + (20 + 4 * 2) * 2 * 3
    text = "\n".join(paper_report.ais_section(file))
    assert f"| iwae | – | – | 5000 | 5000 | 0 | {toy_rows[0]['seconds']:.1f} | " in text
    ais = toy_rows[1]
    assert f"| {ais['log_px']:.2f} ± {ais['stderr']:.2f} | {ais['acceptance']:.2f} |" in text
    gap = record["models"]["vae"]["bdmc"][0]["gap"]
    assert "| linear_gaussian | hmc L=2 | 4 | 2 |" in text and f"| {gap:.2f} |" in text
    assert paper_report.ais_section(tmp_path / "missing.json") == []
    document = paper_report.write(loaded, out, tmp_path / "docs" / "RESULTS.md", None, None)
    text = document.read_text()
    assert "annealed importance sampling" not in text
    assert "## What our defaults change from the paper's code" in text
    assert "7.56 ± 0.16 nats higher (−113.90 against\n−121.47" in text


# The issue-#27 section (benchmarks/annealing_report.py) on hand-made JSON files of the shape
# that ``benchmarks/ais_eval.py --paths`` and ``--hmc-study`` write: no computation.
import annealing_report  # noqa: E402

RUN_INFO = {"split": "test", "seed": 0, "threads": 1, "cores": 2, "machine": "x86_64",
            "torch": "2.13.0+cpu"}  # fmt: skip
HMC_REPR = "HMC(step_size=0.5, leapfrog_steps=3, adapt=True, moves=4, scale='guide')"


def _paths_record() -> dict:
    rows = [
        {"method": "iwae", "qpath": None, "evaluations": 5000, "log_px": -101.234,
         "stderr": None, "seconds": 3.04},
        {"method": "ais", "qpath": 1.0, "kernel": "FlipMH(block=1)", "steps": 30, "chains": 4,
         "evaluations": 120, "log_px": -100.506, "stderr": 0.0449, "acceptance": 0.4,
         "seconds": 2.26},
        {"method": "ais", "qpath": 0.99, "kernel": "FlipMH(block=1)", "steps": 30, "chains": 4,
         "evaluations": 124, "log_px": -100.994, "stderr": 0.0551, "acceptance": 0.4,
         "seconds": 1.94},
        {"method": "smc", "qpath": 0.99, "kernel": "FlipMH(block=1)", "particles": 16,
         "moves": 1, "evaluations": 480, "log_px": -99.876, "acceptance": 0.5,
         "temperatures": 7.24, "stderr": None, "seconds": 12.0},
    ]  # fmt: skip
    bdmc = [{"qpath": 0.99, "kernel": "FlipMH(block=1)", "steps": 40, "chains": 2,
             "num_data": 6, "log_px": -80.126, "upper": -79.5, "gap": 0.626,
             "gap_stderr": 0.2049, "evaluations": 82, "seconds": 0.56}]  # fmt: skip
    vae_rows = [{"method": "ais", "qpath": 0.9, "kernel": HMC_REPR, "steps": 5, "chains": 2,
                 "evaluations": 90, "log_px": -90.5, "stderr": 0.1251, "acceptance": 0.6,
                 "seconds": 0.26},
                {"method": "smc", "qpath": 1.0, "kernel": HMC_REPR, "particles": 8, "moves": 3,
                 "evaluations": 900, "log_px": -90.0, "acceptance": 0.6, "temperatures": 4.04,
                 "stderr": None, "seconds": 1.0}]  # fmt: skip
    return {"images": 7, "bdmc_data": 6, **RUN_INFO, "load_before": [3.99, 5.0, 6.0],
            "load_after": [2.4, 3.0, 4.0], "date": "2030-01-02", "seconds": 150.0,
            "models": {"sbn": {"run": "/tmp/x/runs/sbn-a", "model": "linear_1",
                               "train_steps": 40, "rows": rows, "bdmc": bdmc},
                       "vae": {"run": "runs/vae-a", "model": "gaussian", "train_steps": 9,
                               "rows": vae_rows, "bdmc": []}}}  # fmt: skip


def _study_record() -> dict:
    rows = [{"model": "DiscreteToy(6, 10)", "kernel": kernel, "seed": seed, "steps": 20,
             "chains": 3, "points": 5, "max_abs_error": error, "mean_error": 0.0,
             "mean_stderr": se, "evaluations": evaluations}
            for seed, by_kernel in ((4, (("exact transitions", 0.0954, 0.0624, 1260),
                                         ("flip", 0.5, 0.375, 60))),
                                    (7, (("exact transitions", 0.25, 0.1876, 1260),
                                         ("flip", 1.3126, 0.4376, 60))))
            for kernel, error, se, evaluations in by_kernel]  # fmt: skip
    return {"images": 100, "bdmc_data": 50, **RUN_INFO, "load_before": [5.95, 1, 1],
            "load_after": [4.0, 1, 1], "date": "2030-01-03", "seconds": 90.0,
            "models": {"rows": rows}}  # fmt: skip


@pytest.fixture
def annealing_files(tmp_path):
    paths, study, notes = (tmp_path / n for n in ("paths.json", "study.json", "notes.md"))
    paths.write_text(json.dumps(_paths_record()))
    study.write_text(json.dumps(_study_record()))
    notes.write_text("What these say. Hand-written.\n\nSecond paragraph, by hand.\n")
    return paths, study, notes


def test_the_annealing_tables_carry_the_json_numbers(annealing_files):
    """Every row of both JSON files appears with its numbers at the document's precision, in
    the files' order, and the introductions are the files' metadata."""
    paths, study, notes = annealing_files
    lines = annealing_report.section(paths, study, notes)
    assert lines[0] == "### Annealing paths and tempered SMC (issue #27)"
    expected = [
        "linear_1 (`runs/sbn-a`, 40 steps):",
        "| iwae | – | – | 5000 | 5000 | 3.0 | -101.23 |",
        "| ais | 1 | 30 | 4 | 120 | 2.3 | -100.51 ± 0.04 |",
        "| ais | 0.99 | 30 | 4 | 124 | 1.9 | -100.99 ± 0.06 |",
        "| smc (7.2 temperatures, 1 move each) | 0.99 | N = 16 | – | 480 | 12.0 | -99.88 |",
        "BDMC on 6 points simulated from the model:",
        "| 0.99 | 40 | 2 | -80.13 | -79.50 | 0.63 ± 0.20 | 0.6 |",
        "gaussian (`runs/vae-a`, 9 steps):",
        "| ais | 0.9 | 5 | 2 | 90 | 0.3 | -90.50 ± 0.13 |",
        "| smc (4.0 temperatures, 3 moves each) | 1 | N = 8 | – | 900 | 1.0 | -90.00 |",
        "| DiscreteToy(6, 10) | exact transitions | 1260 | 0.095, 0.250 | 0.062, 0.188 | 1 of 2 "
        "| 0.1250 |",
        "| DiscreteToy(6, 10) | flip | 60 | 0.500, 1.313 | 0.375, 0.438 | 0 of 2 | 0.4063 |",
    ]
    at = [lines.index(line) for line in expected]
    assert at == sorted(at)
    # the gaussian model has no BDMC rows: one BDMC table in all
    assert sum(line.startswith("BDMC on") for line in lines) == 1
    intro = next(line for line in lines if line.startswith("From "))
    for words in (f"`{paths.as_posix()}`", "written 2030-01-02", "the first 7 test images",
                  "1 torch thread on 2 shared cores", "load average 3.99 before, 2.4 after",
                  "2.5 minutes in all", "single-site flips for the SBN",
                  "HMC with four moves of 3 leapfrog steps for the VAE"):  # fmt: skip
        assert words in intro, words
    intro = next(line for line in lines if line.startswith("The kernels against"))
    for words in (f"`{study.as_posix()}`", "`DiscreteToy(6, 10)`, 5 points, 3 chains, T = 20, "
                  "seeds [4, 7]", "over the 5 points", "Written 2030-01-03",
                  "load average 5.95 before, 4 after", "1.5 minutes in all"):  # fmt: skip
        assert words in intro, words


def test_a_missing_annealing_file_gives_no_table(annealing_files, tmp_path):
    paths, study, notes = annealing_files
    absent = tmp_path / "absent.json"
    assert annealing_report.section(absent, None, notes) == []
    assert annealing_report.section(None, absent, None) == []
    only_study = annealing_report.section(absent, study, None)
    assert not any("linear_1" in line or "--paths" in line for line in only_study)
    assert any(line.startswith("| DiscreteToy(6, 10) | flip |") for line in only_study)
    only_paths = annealing_report.section(paths, absent, None)
    assert not any("DiscreteToy" in line or "--hmc-study" in line for line in only_paths)
    assert not any("by hand" in line for line in only_paths + only_study)


def test_the_hand_kept_notes_follow_the_tables(annealing_files):
    paths, study, notes = annealing_files
    lines = annealing_report.section(paths, study, notes)
    last_table = max(i for i, line in enumerate(lines) if line.startswith("|"))
    said = next(i for i, line in enumerate(lines) if "written by hand" in line)
    assert f"`{notes.as_posix()}`" in lines[said] and "regenerated" in lines[said]
    assert last_table < said
    assert lines[said + 1 :] == ["", "What these say. Hand-written.", "",
                                 "Second paragraph, by hand."]  # fmt: skip


def test_two_budgets_side_by_side_from_the_runs(finished, tmp_path):
    """``--longer`` with the tiny sweep as both budgets: each claim's TVO against its rivals at
    both, paired over the two seeds; the same runs twice change nothing."""
    loaded, out = finished
    document = paper_report.write(loaded, out, tmp_path / "docs" / "RESULTS.md", None,
                                  longer=(loaded, out))  # fmt: skip
    text = document.read_text()
    assert "## Two budgets: runs and runs" in text
    tvo = [json.loads((out / n / "final.json").read_text())["log_px"]
           for n in loaded.experiments["sbn"] if "-tvo-" in n]  # fmt: skip
    vimco = [json.loads((out / n / "final.json").read_text())["log_px"]
             for n in loaded.experiments["sbn"] if "-vimco-" in n]  # fmt: skip
    d = [a - b for a, b in zip(tvo, vimco)]
    lead = f"{statistics.fmean(d):+.2f} ± {statistics.stdev(d) / 2**0.5:.2f}"
    row = next(line for line in text.splitlines() if line.startswith("| discrete_toy S=10 vimco |")
               and "with training" not in line and lead in line)  # fmt: skip
    assert row.endswith("| +0.00 ± 0.00 [+0.00, +0.00], 2 pairs | no clear change |")
    for png in ("budgets_sbn", "budgets_continuous"):
        assert (tmp_path / "docs" / "images" / "results" / f"{png}.png").stat().st_size > 1000


def test_a_difference_between_settings_is_paired_over_seeds():
    """Seeds that move together: the paired interval (d = 0.2, 0.1, 0.15: SE 0.029) excludes 0
    where the unpaired 2-SE rule of before (SE 0.8) saw noise; KL̂ is signed so that positive
    favours the first setting (lower is better)."""
    from types import SimpleNamespace

    from tvo.report import Group

    def group(log_px, kl):
        return Group("g", SimpleNamespace(), ["a", "b", "c"],
                     [{"log_px": v, "kl": k} for v, k in zip(log_px, kl)], [], [],
                     [0, 1, 2])  # fmt: skip

    a, b = group([1.0, 2.0, 3.0], [5.0, 6.0, 7.0]), group([0.8, 1.9, 2.85], [5.0, 6.0, 7.5])
    d = paper_report.compare(a, b, "log_px")
    assert d.mean == pytest.approx(0.15) and d.se == pytest.approx(0.05 / 3**0.5)
    assert paper_report.describe(d).endswith("3 pairs, clearly better")
    kl = paper_report.compare(a, b, "kl", higher_is_better=False)
    assert kl.mean == pytest.approx(0.5 / 3)
    assert paper_report.clear_word(kl) == "within noise"


def test_the_regrouping_note_computes_the_speedups_from_the_json(tmp_path):
    """``M · single / group`` of the grouped Gaussian kinds: 9 · 100 / 1500 = 0.60 and
    4 · 200 / 400 = 2.00; no note when every kind could be grouped."""
    kinds = [
        {"settings": {"model": "gaussian"}, "single_ms": 100.0, "group_ms": {"9": 1500.0}},
        {"settings": {"model": "gaussian"}, "single_ms": 200.0, "group_ms": {"4": 400.0}},
        {"settings": {"model": "linear_1"}, "single_ms": 1.0, "group_ms": {"9": 1.0}},
        {"settings": {"model": "gaussian"}, "group_error": "vmap", "single_ms": 1.0,
         "group_ms": {"9": 1.0}},
    ]  # fmt: skip
    path = tmp_path / "budget.json"
    path.write_text(json.dumps({"kinds": kinds}))
    (text,) = paper_report.regrouped(path)
    assert "were 0.60 to 2.00 times as fast" in text
    path.write_text(json.dumps({"kinds": kinds[:3]}))
    assert paper_report.regrouped(path) == []
