"""The analysis jobs on synthetic runs with planted structure: every number, file and figure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from PIL import Image
from scipy import stats as sps
from wandb_records import read_records

from forgetting.analyze import run
from forgetting.config import config_dir, register_schemas
from forgetting.synthetic import Plan, Planted, write_runs

PLAN = Plan(n_samples=1200, archs=("deit_small", "resnet18"), seeds=(0, 1, 2),
            samplers=("random", "spaced_repetition"), arch_overlap=48,
            sampler_gain={"spaced_repetition": -0.015})


def compose_analyze(overrides: list[str]):  # noqa: ANN201 - DictConfig
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("analyze", overrides=overrides)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Planted, Path]:
    root = tmp_path_factory.mktemp("runs")
    return write_runs(root, PLAN), root / PLAN.experiment


@pytest.fixture(scope="module")
def results(planted: tuple[Planted, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("analysis")
    cfg = compose_analyze([f"runs.root={planted[1]}", "logger=none", "analysis.bootstrap=200"])
    report = run(cfg, out_dir=out)
    assert report == out / "report.md"
    return json.loads((out / "results.json").read_text())["datasets"]["synthetic"] | {"_out": out}


def test_jaccard_across_architectures_is_the_planted_overlap(results: dict) -> None:
    k = PLAN.top_k
    expected = PLAN.arch_overlap / (2 * k - PLAN.arch_overlap)
    pair = results["forgetting_sets"]["deit_small vs resnet18"]
    assert pair["per_seed"] == pytest.approx([expected] * 6, abs=1e-12)
    assert pair["null"] == pytest.approx(PLAN.top_q / (2 - PLAN.top_q))
    p = sps.hypergeom.sf(PLAN.arch_overlap - 1, PLAN.n_samples, k, k)
    assert pair["max_p"] == pytest.approx(p, rel=1e-6)


def test_seed_spearman_equals_that_of_the_planted_events(planted: tuple[Planted, Path],
                                                         results: dict) -> None:
    truth = planted[0]
    for arch in PLAN.archs:
        label = f"{arch}/random/s"
        score = [np.where(np.isfinite(truth.period[f"{label}{s}"]), truth.events(f"{label}{s}"),
                          np.inf) for s in PLAN.seeds]
        rhos = [sps.spearmanr(score[i], score[j]).statistic for i, j in ((0, 1), (0, 2), (1, 2))]
        got = results["seed_stability"][f"{arch}/random"]
        assert got["mean_spearman"] == pytest.approx(np.mean(rhos), abs=1e-9)
        assert got["mean_jaccard"] == 1.0  # the planted top set is the same in every seed


def test_class_report_finds_the_planted_classes(planted: tuple[Planted, Path],
                                                results: dict) -> None:
    truth, out = planted[0], results["_out"]
    for arch in PLAN.archs:
        events = np.mean([truth.events(f"{arch}/random/s{s}") for s in PLAN.seeds], axis=0)
        means = np.bincount(truth.labels, events) / np.bincount(truth.labels)
        table = pd.read_csv(out / "tables" / f"synthetic_classes_{arch}.csv")
        np.testing.assert_allclose(table.mean_events, means, rtol=1e-12)
        order = [f"class_{c}" for c in np.argsort(-means, kind="stable")]
        assert results["class_report"][f"{arch} most forgotten"][0] == order[0]
        assert results["class_report"][f"{arch} least forgotten"][0] == order[-1]
        assert sps.spearmanr(means, truth.class_weight).statistic > 0.7  # planted weights show
        confusions = pd.read_csv(out / "tables" / f"synthetic_confusions_{arch}.csv")
        for true, pred in zip(confusions.true_name, confusions.pred_name, strict=True):
            assert pred == f"class_{truth.confuser[int(true.split('_')[1])]}"


def test_warmup_loss_correlation_matches_the_planted_one(planted: tuple[Planted, Path],
                                                         results: dict) -> None:
    truth = planted[0]
    for arch in PLAN.archs:
        rhos = []
        for seed in PLAN.seeds:
            label = f"{arch}/random/s{seed}"
            p = truth.period[label]
            finite = np.isfinite(p)
            rhos.append(sps.spearmanr(truth.warmup_loss[label][finite], -p[finite]).statistic)
        got = results["warmup_decay"][arch]["mean_spearman"]
        assert got == pytest.approx(np.mean(rhos), abs=0.03)
        assert got == pytest.approx(np.sqrt(PLAN.warmup_rho), abs=0.15)


def test_sampler_difference_is_the_planted_gain(results: dict) -> None:
    for arch in PLAN.archs:
        row = results["sampler_comparison"][f"{arch}/spaced_repetition"]
        assert row["diff"] == pytest.approx(-0.015, abs=1e-12)
        assert row["seeds"] == 3 and row["presentations"] == row["random_presentations"]


def test_ensemble_coverage_equals_the_planted_final_correctness(planted: tuple[Planted, Path],
                                                                results: dict) -> None:
    truth = planted[0]
    either, alone = [], []
    for seed in PLAN.seeds:
        a = truth.final_correct[f"deit_small/random/s{seed}"]
        b = truth.final_correct[f"resnet18/random/s{seed}"]
        either.append(np.mean(a | b))
        alone.append(np.mean(a))
    got = results["ensemble"]["deit_small + resnet18"]
    expected_either = np.mean(either * 2)  # the spaced_repetition arm repeats the random one
    assert got["either"] == pytest.approx(expected_either, abs=1e-12)
    assert got["a_alone"] == pytest.approx(np.mean(alone), abs=1e-12)


def test_fit_quality_counts_every_sample(results: dict) -> None:
    row = results["fit_quality"]["resnet18/random"]
    assert row["n"] == 3 * PLAN.n_samples
    assert row["n_defined"] + row["n_flat"] + row["n_few_points"] == row["n"]
    assert -1.0 <= row["ci_low"] <= row["mean_r2"] <= row["ci_high"] <= 1.0


def test_every_output_exists_and_every_figure_opens(results: dict) -> None:
    out = results["_out"]
    report = (out / "report.md").read_text()
    for figure in (out / "figures").glob("*.png"):
        with Image.open(figure) as image:
            assert image.size[0] > 100
        assert f"figures/{figure.name}" in report
    names = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"synthetic_retention_curves", "synthetic_jaccard_heatmap", "synthetic_class_forgetting",
            "synthetic_data_map_resnet18", "synthetic_r2_distribution",
            "synthetic_lambda_distribution"} <= names
    assert len(list((out / "tables").glob("*.csv"))) >= 10
    assert "Jaccard 0.250 vs 0.053 expected by chance" in report
    assert "published 0.34 (OCTDL) / 0.15 (CUB)" in report


def test_single_architecture_skips_the_pairwise_jobs(planted: tuple[Planted, Path],
                                                     tmp_path: Path) -> None:
    cfg = compose_analyze([f"runs.root={planted[1]}", "logger=none", "runs.arch=[resnet18]",
                           "runs.seed=[0]", "analysis.bootstrap=100"])
    run(cfg, out_dir=tmp_path)
    got = json.loads((tmp_path / "results.json").read_text())["datasets"]["synthetic"]
    assert got["forgetting_sets"]["skipped"].startswith("needs runs of two architectures")
    assert got["seed_stability"]["skipped"].startswith("needs at least two seeds")
    assert got["warmup_decay"]["skipped"] is None
    assert "*Skipped: needs runs of two architectures" in (tmp_path / "report.md").read_text()


def test_cli_multirun_over_top_q_and_wandb_analysis_run(planted: tuple[Planted, Path],
                                                        tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "offline"}
    out = subprocess.run(
        [sys.executable, "-m", "forgetting.analyze", "-m", f"runs.root={planted[1]}",
         "analysis.top_q=0.05,0.2", "analysis=forgetting_sets", f"hydra.sweep.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    reports = sorted(tmp_path.glob("*/report.md"))
    assert [p.parent.name for p in reports] == [
        "0_analysis.top_q=0.05,analysis=forgetting_sets",
        "1_analysis.top_q=0.2,analysis=forgetting_sets"]
    for report, q in zip(reports, (0.05, 0.2), strict=True):
        numbers = json.loads((report.parent / "results.json").read_text())
        assert numbers["analysis"]["top_q"] == q
        (run_file,) = (report.parent / "wandb").glob("offline-run-*/run-*.wandb")
        records = read_records(run_file)
        (info,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert (info.job_type, info.run_group) == ("analysis", "synthetic")
        logged = {item.key or "/".join(item.nested_key): item.value_json for r in records
                  if r.WhichOneof("record_type") == "history" for item in r.history.item}
        assert logged["synthetic/jaccard_arch_pairs/_type"] == '"table-file"'
        assert logged["synthetic/synthetic_jaccard_heatmap/_type"] == '"image-file"'


def test_no_runs_says_where_it_looked(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "forgetting.analyze", f"runs.root={tmp_path}",
                          "logger=none", f"hydra.run.dir={tmp_path}/out"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"no finished runs under {tmp_path}" in out.stderr
    assert "dynamics/meta.json" in out.stderr


def test_readme_excerpt_is_the_reports_headline(results: dict, tmp_path: Path) -> None:
    from forgetting.report import END, START, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\nrest\n")
    update_readme(readme, results["_out"] / "report.md")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "old" not in text
    assert "| Jaccard top-10%, deit_small vs resnet18 | 0.250 (chance 0.053) |" in text
