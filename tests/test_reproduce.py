"""The study driver end to end at the smoke scale: every experiment notebook runs, the report has every table,
a failing run is reported without stopping the others, and a second call does no work twice. Also: the paper
scale's configs resolve and take one training step on a small model."""
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import eat.reproduce as R
from eat.study import HEAD, Run, get_scale, plan, run_config, with_files
from eat.train import train


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp('study')
    bad = Run('main', 'broken_s0', 'train_eval.ipynb', dict(SCALE='smoke', TABLE='main', RUN='broken_s0',
                                                            ROW='broken', MODEL='no_such_model', SEED=0))
    orig = R.plan
    R.plan = lambda scale, extended=False: orig(scale, extended) + [bad]
    try: summary = R.reproduce('smoke', root=root, workers=1, progress=False)
    finally: R.plan = orig
    return root, summary


def test_every_notebook_runs_and_the_failure_is_reported(smoke):
    root, summary = smoke
    runs = plan('smoke')
    assert summary['complete'] == len(runs)
    assert list(summary['failed']) == ['main/broken_s0']
    err = (root / 'runs/smoke/main/broken_s0/error.txt').read_text()
    assert 'no_such_model' in err and 'executed notebook:' in err
    for r in runs:
        folder = root / 'runs/smoke' / r.table / r.name
        assert json.loads((folder / 'results.json').read_text())['status'] == 'ok', r.key
        assert (folder / r.notebook).is_file() and (folder / 'parameters.json').is_file()


def test_report_has_every_table_and_figure(smoke):
    root, _ = smoke
    res = root / 'results/smoke'
    report = (res / 'REPORT.md').read_text()
    for title in ['Table 1: main comparison', 'Table 1b: timm baselines', 'Table 2: component factorial',
                  'Table 2, pre-registered contrasts', 'Table 3: damping sweep', 'Table 3b: exploration length',
                  'Table 4: background sensitivity', 'Table 5: validation SRCC', 'Table 5b: exploitation',
                  'Table 5c: validation SRCC per epoch', 'Table 6: arms tuned by Optuna', 'Table 6, pre-registered contrasts',
                  'Attention', 'Table 6b: Optuna search, EAT', 'Table 6c: Optuna search, DAT', 'Part 3 (issue 25)',
                  'not AVA numbers']:
        assert title in report, title
    main = pd.read_csv(res / 'table1_main.csv')
    assert set(main.configuration) == {'pretrained backbone, no fine-tuning', HEAD, 'DAT', 'EAT',
                                       'EAT, original interest-point init'}
    assert set(pd.read_csv(res / 'table6_tuned.csv').configuration) == {'DAT (part-3 rerun)', 'DAT (Optuna-tuned)', 'EAT (part-3 rerun)',
                                                                       'EAT (Optuna-tuned)'}
    summary = json.loads((res / 'summary.json').read_text())
    assert summary['verdict'] in ('supported', 'contradicted', 'not supported', 'inconclusive')
    for fam in ('factorial', 'damping', 'explore', 'long', 'tuned'):  # every pre-registered contrast, measured
        assert summary[fam], fam
        for k, e in summary[fam].items():
            if k in ('epochs_to_threshold', 'mean_val_srcc'):  # seed-level: the smoke scale's one seed is too few
                assert e['estimate'] is None and 'at least 2' in e['reason'], e; continue
            assert {'estimate', 'ci95', 'p', 'p_holm', 'mde80', 'verdict'} <= set(e) and e['estimate'] is not None, (fam, k, e)
    assert set(summary['factorial']) == {f'{c}_{m}' for c in ('interest_points', 'rule', 'interaction') for m in 'DI'}
    assert set(summary['verdicts']) == {'background', 'net_gain', 'convergence'}
    assert summary['reproduction']['passes'] is True  # the seed-0 rerun gives the same predictions
    assert summary['eat_grid_vs_dat_step0_max_abs_diff'] <= 1e-5  # EAT(grid) starts as DAT
    assert (res / 'predictions.csv.gz').is_file() and (res / 'test_images.csv.gz').is_file()
    assert main.SRCC.notna().all()
    assert list(pd.read_csv(res / 'table1b_baselines.csv').configuration) == ['ConvNeXt (timm, shrunk)']
    for fig in ['fig_convergence.png', 'fig_convergence_long.png', 'fig_table3a_damping.png', 'optuna_eat_optuna_history.png',
                'optuna_dat_optuna_history.png']:
        assert (res / fig).stat().st_size > 5_000, fig
    assert list(res.glob('attention_figures_attention_*.png'))
    ablation = pd.read_csv(res / 'table2_ablation.csv')
    assert len(ablation) == 5  # the factorial's four cells and the batch-mean row


def test_report_rebuilds_from_committed_files_alone(smoke, tmp_path):
    root, _ = smoke
    import shutil
    res = tmp_path / 'results' / 'smoke'
    shutil.copytree(root / 'results/smoke', res)
    before = json.loads((res / 'summary.json').read_text())
    titles = [l for l in (res / 'REPORT.md').read_text().splitlines() if l.startswith(('### ', '!['))]
    from eat.report import build_report
    build_report(None, res, 'smoke')  # no run folders: only the committed files
    assert json.loads((res / 'summary.json').read_text()) == before
    # every section and figure survives, the attention and Optuna ones (copied from the runs) included
    assert [l for l in (res / 'REPORT.md').read_text().splitlines() if l.startswith(('### ', '!['))] == titles


def test_report_only_works_again_after_a_report_only_run(smoke, tmp_path):
    root, _ = smoke
    import shutil
    shutil.copytree(root / 'results/smoke', tmp_path / 'results/smoke')  # committed files, no run folders
    for _ in range(2):  # the first call leaves runs/smoke/_report behind, which is not a finished run
        s = R.reproduce('smoke', root=tmp_path, workers=1, progress=False, report_only=True)
        assert not s['failed'] and s['report'], s


def test_second_call_does_no_work_twice(smoke):
    root, _ = smoke
    stamps = {p: p.stat().st_mtime for p in (root / 'runs/smoke').glob('*/*/results.json')}
    summary = R.reproduce('smoke', root=root, workers=1, progress=False, report=False)
    assert summary['failed'] == {} and summary['complete'] == len(plan('smoke'))
    assert {p: p.stat().st_mtime for p in stamps} == stamps


def test_a_new_machine_continues_from_the_committed_files(smoke, tmp_path):
    "Committed runs are skipped; weights a pending run reads are remade and compared; an Optuna result is restored."
    root, _ = smoke
    import shutil
    res = tmp_path / 'results' / 'smoke'
    shutil.copytree(root / 'results/smoke', res)  # what a clone has: the results folder, no run folders
    assert R.reproduce('smoke', root=tmp_path, workers=1, progress=False, report=False)['complete'] == len(plan('smoke'))
    assert not list((tmp_path / 'runs' / 'smoke').glob('*/*/results.json'))  # nothing ran again
    shutil.rmtree(res / 'runs' / 'tuned')  # as if the tuned arms had not landed yet
    runs = pd.read_csv(res / 'runs.csv'); runs[runs.table != 'tuned'].to_csv(res / 'runs.csv', index=False)
    s = R.reproduce('smoke', root=tmp_path, workers=1, progress=False, report=False)
    assert s['failed'] == {} and s['complete'] == len(plan('smoke'))
    ran = sorted(f.parent.relative_to(tmp_path / 'runs' / 'smoke').as_posix()
                 for f in (tmp_path / 'runs' / 'smoke').glob('*/*/results.json'))
    assert ran == ['optuna/dat', 'optuna/eat', 'starts/head_s0', 'tuned/dat_s0', 'tuned/eat_s0'], ran
    assert not (tmp_path / 'runs/smoke/optuna/eat/trials').exists()  # restored from the store, not searched again
    rerun = pd.read_csv(res / 'reruns.csv')
    assert rerun.run.tolist() == ['starts/head_s0'] and rerun.max_abs_diff.max() <= 1e-5
    assert (res / 'runs/tuned/eat_s0/predictions.csv.gz').is_file()  # the new runs landed in the store
    store = sorted(p.relative_to(res) for p in (res / 'runs').rglob('*'))
    s = R.reproduce('smoke', root=tmp_path, workers=1, progress=False, report=False, rerun=True, only=['main'])
    assert s['failed'] == {}  # --rerun: the committed main runs made again and compared, the store untouched
    assert set(pd.read_csv(res / 'reruns.csv').run) >= {'main/dat_s0', 'main/eat_s0'}
    assert pd.read_csv(res / 'reruns.csv').max_abs_diff.max() <= 1e-5  # the same machine gives the same numbers
    assert sorted(p.relative_to(res) for p in (res / 'runs').rglob('*')) == store


def test_cli_refuses_bad_arguments(capsys):
    assert R.main(['--scale', 'huge']) == 2
    assert 'Unknown scale' in capsys.readouterr().err
    assert R.main(['--scale', 'paper']) == 2
    assert '--ava-txt' in capsys.readouterr().err


def test_paper_scale_resolves_and_takes_one_step(tmp_path):
    from eat.synth import make_synthetic_ava
    ava = make_synthetic_ava(tmp_path / 'ava', n=12, size=64, seed=0, progress=False)  # AVA's exact format
    scale = with_files(get_scale('paper'), str(ava / 'AVA.txt'), str(ava / 'images'))
    for model in ['eat', 'dat', 'swin_t']:
        cfg = run_config(scale, model)
        assert cfg.data.kind == 'ava' and cfg.epochs == 20 and cfg.batch_size == 16 and cfg.lr == 1e-6
    cfg = run_config(scale, 'eat')
    assert cfg.model == 'eat_base' and cfg.init == 'dat_base_in1k_224.pth' and cfg.explore_epochs == -1
    small = replace(cfg, model='eat_micro', init='', epochs=1, batch_size=4, eval_test=False, eval_init=False,
                    data=replace(cfg.data, num_workers=0, fractions=[0.6, 0.2, 0.2]))
    res = train(small, tmp_path / 'run', progress=False)
    log = pd.read_csv(tmp_path / 'run/log.csv')
    assert log.epoch.tolist() == [1] and log.train_loss.notna().all()
    assert res['epochs'] == 1


def test_paper_scale_takes_the_original_part_files(tmp_path):
    "eat-reproduce --scale paper --ava-parts TRAIN VAL TEST: the runs read the original code's CSVs and keep their parts."
    from eat.data import read_ava, write_ava_parts
    from eat.loaders import build_data
    from eat.synth import make_synthetic_ava
    ava = make_synthetic_ava(tmp_path / 'ava', n=30, size=64, seed=0, progress=False)
    t = read_ava(ava / 'AVA.txt', ava / 'images')
    t['split'] = ['train'] * 18 + ['val'] * 6 + ['test'] * 6
    files = write_ava_parts(t, tmp_path / 'parts')
    parts = ','.join(str(files[p]) for p in ('train', 'val', 'test'))
    scale = with_files(get_scale('paper'), images=str(ava / 'images'), parts=parts)
    cfg = run_config(scale, 'eat')
    assert (cfg.data.kind, cfg.data.labels) == ('ava_parts', parts)
    small = replace(cfg, model='eat_micro', init='', data=replace(cfg.data, num_workers=0))
    with pytest.warns(UserWarning, match="cannot tell whether the test part"):  # no official list given to audit against
        data = build_data(small, tmp_path / 'run')
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 6)  # their parts, not a new 90/5/5 split
    assert R.main(['--scale', 'paper', '--ava-images', str(ava / 'images')]) == 2  # neither AVA.txt nor the parts
