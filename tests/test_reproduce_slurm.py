"""`eat-reproduce --launcher slurm` through submitit's local executor (EAT_SUBMITIT_CLUSTER=local: every run a real
job, a process of its own): the same run folders, store and report as the local launcher, the job's log named in a
failure, and a second call submits nothing."""
import json
import os

import pandas as pd
import pytest

import eat.reproduce as R
from eat.study import Run, plan

pytest.importorskip('submitit')

TABLES = ['main']  # the main table's runs and the shared start they read: a dependency across jobs, 5 runs
BROKEN = Run('main', 'broken_s0', 'train_eval.ipynb', dict(SCALE='smoke', TABLE='main', RUN='broken_s0', ROW='broken',
                                                           MODEL='no_such_model', SEED=0))


def finished(root):
    "The finished runs under `root`, each with its file names (tensorboard's event files are named by time and host)."
    return {f.parent.relative_to(root).as_posix(): sorted(p.name for p in f.parent.iterdir()
                                                          if not p.name.startswith('events.out.tfevents'))
            for f in (root / 'runs/smoke').glob('*/*/results.json')}


@pytest.mark.slow  # 5 min on 2 cores busy with another study: two passes of 5 runs and the report
def test_slurm_launcher_runs_the_smoke_scale_as_jobs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('EAT_SUBMITIT_CLUSTER', 'local')
    orig = R.plan
    monkeypatch.setattr(R, 'plan', lambda scale, extended=False: orig(scale, extended) + [BROKEN])
    slurm, local = tmp_path / 'slurm', tmp_path / 'local'
    cli = ['--scale', 'smoke', '--only', *TABLES, '--out', str(slurm), '--launcher', 'slurm', '--gpus', '0',
           '--cpus-per-task', '1', '--time', '30']
    assert R.main(cli) == 1  # the broken run fails; the others go on
    out = capsys.readouterr().out
    logs = slurm / 'runs/smoke/_slurm'
    assert 'main/broken_s0 failed' in out and str(logs) in out and '_log.err' in out, out  # the job's log is named
    assert (slurm / 'runs/smoke/main/broken_s0/error.txt').is_file()

    monkeypatch.setattr(R, 'plan', orig)
    s = R.reproduce('smoke', root=local, workers=os.cpu_count() or 1, only=TABLES, progress=False)  # one thread a run
    assert s['failed'] == {}
    want = {r.key for r in plan('smoke') if r.table in TABLES} | {'starts/head_s0'}
    assert set(finished(local)) == {f'runs/smoke/{k}' for k in want}
    assert finished(slurm) == finished(local)  # the same run folders with the same files
    for k in want:  # the same numbers: one thread a run on the same machine gives the same predictions, bit for bit
        a, b = (json.loads((root / 'runs/smoke' / k / 'results.json').read_text()) for root in (slurm, local))
        assert (a['test'], a['best_val'], a['history']) == (b['test'], b['best_val'], b['history']), k
        assert (slurm / 'runs/smoke' / k / 'predictions.csv').read_bytes() == \
            (local / 'runs/smoke' / k / 'predictions.csv').read_bytes(), k
    for root in (slurm, local):  # every finished run landed in the store
        assert {p.parent.relative_to(root / 'results/smoke/runs').as_posix()
                for p in (root / 'results/smoke/runs').glob('*/*/results.json')} == want
    assert sorted(p.name for p in (slurm / 'results/smoke').iterdir()) == \
        sorted(p.name for p in (local / 'results/smoke').iterdir())
    heads = [[l for l in (root / 'results/smoke/REPORT.md').read_text().splitlines() if l.startswith(('### ', '!['))]
             for root in (slurm, local)]
    assert heads[0] == heads[1]  # the same report
    pd.testing.assert_frame_equal(*(pd.read_csv(root / 'results/smoke/table1_main.csv') for root in (slurm, local)))

    jobs = sorted(logs.glob('*_submitted.pkl'))
    assert len(jobs) == len(want) + 1  # one job a run
    stamps = {p: p.stat().st_mtime for p in (slurm / 'runs/smoke').glob('*/*/results.json')}
    assert R.main([*cli, '--no-report']) == 0  # again: everything done is skipped, no job submitted
    assert sorted(logs.glob('*_submitted.pkl')) == jobs
    assert {p: p.stat().st_mtime for p in stamps} == stamps


def test_slurm_options_are_checked():
    assert R.main(['--scale', 'smoke', '--launcher', 'slurm', '--slurm-extra', 'constraint']) == 2
    if not __import__('shutil').which('sbatch'):  # no cluster here: the error says where to run it
        assert R.main(['--scale', 'smoke', '--launcher', 'slurm']) == 2


def test_the_options_reach_the_sbatch_script(tmp_path, monkeypatch):
    "Every per-job option of the command line lands in the job's sbatch script (a fake sbatch and srun: no cluster)."
    (tmp_path / 'bin').mkdir()
    for tool in ('sbatch', 'srun'):
        (tmp_path / 'bin' / tool).write_text('#!/bin/sh\necho "Submitted batch job 4242"\n')
        (tmp_path / 'bin' / tool).chmod(0o755)
    monkeypatch.setenv('PATH', f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    got = {}
    monkeypatch.setattr(R, 'reproduce', lambda *a, **k: got.update(k) or dict(complete=0, runs=0, failed={}, minutes=0,
                                                                              report=None))
    assert R.main(['--scale', 'smoke', '--launcher', 'slurm', '--out', str(tmp_path), '--partition', 'gpu', '--gpus',
                   '2', '--time', '90', '--cpus-per-task', '6', '--mem', '32', '--account', 'proj', '--qos', 'high',
                   '--slurm-extra', 'constraint=a100', '--slurm-extra', 'exclude=node07']) == 0
    job = got['launcher'].executor.submit(print, 'hi')  # what sbatch would have been given
    script = job.paths.submission_file.read_text()
    for line in ['--partition=gpu', '--gpus-per-node=2', '--time=90', '--cpus-per-task=6', '--mem=32GB',
                 '--account=proj', '--qos=high', '--constraint=a100', '--exclude=node07', '--nodes=1',
                 f"--error={tmp_path / 'runs/smoke/_slurm'}/%j_0_log.err"]:
        assert f'#SBATCH {line}\n' in script, (line, script)
