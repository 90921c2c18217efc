"""The epoch loops against hand-computed references: accumulation, clipping, update counting, stop, scores."""
from __future__ import annotations

import argparse
import signal
from contextlib import nullcontext

import pytest
import torch

from hydra_vision.training import loops
from hydra_vision.training.distributed import DistContext
from hydra_vision.training.loops import TrainParts, evaluate, train_one_epoch
from hydra_vision.training.signals import StopRequest

CPU = DistContext(device=torch.device("cpu"))


def _options(**overrides: object) -> argparse.Namespace:
    options = dict(grad_accum_steps=1, clip_grad=None, clip_mode="norm", channels_last=False, log_interval=1,
                   mixup_off_epoch=0, synchronize_step=False)
    return argparse.Namespace(**{**options, **overrides})


def _batches(n: int, size: int = 2, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (size,), generator=g))
            for _ in range(n)]


def _parts(model: torch.nn.Module, lr: float = 0.5, scheduler: object = None) -> TrainParts:
    return TrainParts(model=model, raw_model=model, optimizer=torch.optim.SGD(model.parameters(), lr=lr),
                      scheduler=scheduler, loss_fn=torch.nn.CrossEntropyLoss(), autocast=nullcontext, ctx=CPU)


def _linear() -> torch.nn.Module:
    return torch.nn.Linear(4, 3, dtype=torch.float64)


@pytest.mark.parametrize("micro_batches, accum", [(4, 2), (5, 2), (6, 3), (3, 1)])
def test_accumulated_updates_equal_large_batch_steps(micro_batches: int, accum: int) -> None:
    batches = _batches(micro_batches)
    model = _linear()
    reference = _linear()
    reference.load_state_dict(model.state_dict())
    metrics, progress = train_one_epoch(_parts(model), batches, 0, _options(grad_accum_steps=accum),
                                        StopRequest(), total_updates=10)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    for start in range(0, micro_batches, accum):
        group = batches[start:start + accum]
        inputs, targets = torch.cat([x for x, _ in group]), torch.cat([y for _, y in group])
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(reference(inputs), targets).backward()
        optimizer.step()
    assert progress.batches == micro_batches and progress.samples == 2 * micro_batches
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert metrics["loss"] > 0


def test_mean_training_loss_is_per_sample() -> None:
    batches = _batches(3)
    model = _linear()
    frozen = _linear()
    frozen.load_state_dict(model.state_dict())
    metrics, _ = train_one_epoch(_parts(model, lr=0.0), batches, 0, _options(), StopRequest(), total_updates=3)
    inputs, targets = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
    expected = torch.nn.functional.cross_entropy(frozen(inputs), targets).item()
    assert metrics["loss"] == pytest.approx(expected, rel=1e-12)


def test_gradient_clipping_bounds_every_update() -> None:
    model = _linear()
    start = [p.detach().clone() for p in model.parameters()]
    train_one_epoch(_parts(model, lr=1.0), _batches(3), 0, _options(clip_grad=1e-3), StopRequest(), total_updates=3)
    moved = torch.cat([(p.detach() - s).flatten() for p, s in zip(model.parameters(), start)]).norm().item()
    assert moved <= 3 * 1e-3 * (1 + 1e-9)


class _RecordingScheduler:
    def __init__(self) -> None:
        self.updates: list[int] = []

    def step_update(self, num_updates: int) -> None:
        self.updates.append(num_updates)


def test_updates_are_counted_from_the_epoch_start() -> None:
    scheduler = _RecordingScheduler()
    logged = []
    train_one_epoch(_parts(_linear(), scheduler=scheduler), _batches(5), 2, _options(grad_accum_steps=2),
                    StopRequest(), total_updates=9, log_step=lambda *row: logged.append(row[1]))
    assert scheduler.updates == [7, 8, 9] and logged == [7, 8, 9]


def test_compile_workers_are_released_once_an_epoch_after_its_first_update(monkeypatch) -> None:
    scheduler = _RecordingScheduler()
    released_after = []  # scheduler updates already made when the workers were released
    monkeypatch.setattr(loops, "release_compile_workers", lambda: released_after.append(len(scheduler.updates)))
    for epoch in range(2):
        train_one_epoch(_parts(_linear(), scheduler=scheduler), _batches(5), epoch, _options(grad_accum_steps=2),
                        StopRequest(), total_updates=6)
    assert released_after == [0, 3] and len(scheduler.updates) == 6


def test_stop_request_ends_the_epoch_after_the_current_update() -> None:
    scheduler = _RecordingScheduler()
    stop = StopRequest()
    stop.signum = signal.SIGTERM
    _, progress = train_one_epoch(_parts(_linear(), scheduler=scheduler), _batches(4), 0, _options(), stop,
                                  total_updates=4)
    assert progress.batches == 1 and scheduler.updates == [1]
    assert stop.exit_code == 128 + signal.SIGTERM


def test_stop_at_the_last_update_completes_the_epoch() -> None:
    stop = StopRequest()
    stop.signum = signal.SIGTERM
    _, progress = train_one_epoch(_parts(_linear()), _batches(1), 0, _options(), stop, total_updates=1)
    assert progress.batches == 1


@pytest.mark.parametrize("accum", [1, 2])
def test_a_resumed_epoch_continues_the_updates_and_the_loss(accum: int) -> None:
    """Stopped after the first update, then resumed on the remaining batches: the same weights,
    update counts, mean loss and logged rows (every 2 updates: the stop falls inside a row's window)
    as the epoch in one go."""
    batches = _batches(8)
    whole, split = _linear(), _linear()
    split.load_state_dict(whole.state_dict())
    full_scheduler, split_scheduler = _RecordingScheduler(), _RecordingScheduler()
    options = _options(grad_accum_steps=accum, log_interval=2)
    rows, split_rows = [], []
    metrics, _ = train_one_epoch(_parts(whole, scheduler=full_scheduler), batches, 1, options, StopRequest(),
                                 total_updates=12, log_step=lambda *row: rows.append(row[:4]))
    stop = StopRequest()
    stop.signum = signal.SIGTERM
    parts = _parts(split, scheduler=split_scheduler)
    _, progress = train_one_epoch(parts, batches, 1, options, stop, total_updates=12)
    assert progress.batches == accum and progress.window_samples == 2 * accum

    class _Rest(list):  # the whole epoch's length, the batches after the stop
        def __len__(self) -> int:
            return len(batches)

    resumed, done = train_one_epoch(parts, _Rest(batches[accum:]), 1, options, StopRequest(), total_updates=12,
                                    start=progress, log_step=lambda *row: split_rows.append(row[:4]))
    assert done.batches == len(batches) and split_scheduler.updates == full_scheduler.updates
    assert done.window_samples == 0 and done.window_loss_sum == 0
    assert resumed["loss"] == pytest.approx(metrics["loss"], rel=1e-12)
    assert split_rows == rows and len(rows) == 8 // accum // 2
    for a, b in zip(whole.parameters(), split.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


class _FixedLogits(torch.nn.Module):
    """Returns row `i` of a fixed logit table for input value i."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].long()]


class _Loader(list):
    def __init__(self, batches: list, dataset_size: int) -> None:
        super().__init__(batches)
        self.dataset = range(dataset_size)


@pytest.mark.parametrize("batch", [1, 3, 7, 10])
def test_evaluate_matches_hand_computed_scores(batch: int) -> None:
    g = torch.Generator().manual_seed(1)
    table = torch.randn(10, 6, generator=g)
    targets = torch.randint(0, 6, (10,), generator=g)
    inputs = torch.arange(10, dtype=torch.float32)[:, None]
    loader = _Loader([(inputs[i:i + batch], targets[i:i + batch]) for i in range(0, 10, batch)], 10)
    scores = evaluate({"model": _FixedLogits(table)}, loader, CPU)["model"]
    ranks = (table > table.gather(1, targets[:, None])).sum(1)
    assert scores["top1"] == pytest.approx(100.0 * (ranks < 1).sum().item() / 10, abs=1e-9)
    assert scores["top5"] == pytest.approx(100.0 * (ranks < 5).sum().item() / 10, abs=1e-9)
    assert scores["loss"] == pytest.approx(torch.nn.functional.cross_entropy(table, targets).item(), rel=1e-6)


def test_evaluate_scores_several_models_in_one_pass_over_the_loader() -> None:
    g = torch.Generator().manual_seed(2)
    tables = {"model": torch.randn(9, 7, generator=g), "ema": torch.randn(9, 7, generator=g)}
    targets = torch.randint(0, 7, (9,), generator=g)
    inputs = torch.arange(9, dtype=torch.float32)[:, None]

    class _CountingLoader(_Loader):
        passes = 0

        def __iter__(self):
            type(self).passes += 1
            return super().__iter__()

    loader = _CountingLoader([(inputs[i:i + 4], targets[i:i + 4]) for i in range(0, 9, 4)], 9)
    together = evaluate({name: _FixedLogits(t) for name, t in tables.items()}, loader, CPU)
    assert _CountingLoader.passes == 1
    for name, table in tables.items():
        alone = evaluate({name: _FixedLogits(table)}, loader, CPU)[name]
        assert together[name] == alone
    assert together["model"] != together["ema"]


def test_evaluate_releases_compile_workers_once_after_the_first_batch(monkeypatch) -> None:
    calls = []  # one entry per model call

    class _CountingLogits(_FixedLogits):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append("forward")
            return super().forward(x)

    released_after = []  # model calls made when the workers were released
    monkeypatch.setattr(loops, "release_compile_workers", lambda: released_after.append(len(calls)))
    table = torch.randn(9, 5, generator=torch.Generator().manual_seed(3))
    inputs, targets = torch.arange(9, dtype=torch.float32)[:, None], torch.zeros(9, dtype=torch.long)
    loader = _Loader([(inputs[i:i + 4], targets[i:i + 4]) for i in range(0, 9, 4)], 9)
    evaluate({"model": _CountingLogits(table), "ema": _CountingLogits(table)}, loader, CPU)
    assert released_after == [2] and len(calls) == 6
