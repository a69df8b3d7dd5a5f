"""Training a student (method §2): AdamW, clipping, a plateau or cosine learning-rate
schedule, early stopping.

``target_loss`` implements the paper's width-monotone protocol: a wider student trains
until its validation loss is at most a fraction of the narrower one's, and the summary
records whether it got there.

``train_pack(..., checkpoint=path)`` with ``train.checkpoint_every`` > 0 writes the whole
training state of the pack to ``path`` every that many steps; a rerun of a job killed
mid-training resumes from it and ends with the results of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from .model import KERNELS, StudentRNN, check_choice, eigenvalues, student_forward

SCHEDULES = ("plateau", "cosine")


@dataclass
class TrainConfig:
    steps: int = 1000  # optimisation-step budget
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 0.0
    clip_norm: float = 0.5  # gradient-norm clipping; 0 disables
    eval_every: int = 25  # steps between validation passes (and history rows)
    schedule: str = "plateau"  # plateau (ReduceLROnPlateau) | cosine (to min_lr over the budget)
    plateau_patience: int = 8  # validation passes without improvement before lr *= factor
    plateau_factor: float = 0.1
    early_stop_patience: int = 20  # validation passes without improvement before stopping
    min_lr: float = 1e-6
    time_weighting: bool = False  # weight the MSE by ((k+1)/(T+1))^2, mean 1
    target_loss: float | None = None  # stop once val loss <= this (width monotonicity)
    monotone_steps: int | None = None  # budget of a student with a target_loss (default steps)
    log_every: int = 100  # steps between progress lines
    kernel: str = "fused"  # diagonal rnn / ssm time loop on the CPU: fused (numba) | torch
    checkpoint_every: int = 0  # steps between checkpoints of a pack (train_pack); 0: none

    def __post_init__(self):
        check_choice("train.kernel", self.kernel, KERNELS)
        if self.checkpoint_every < 0:
            raise ValueError("checkpoint_every must be >= 0")
        for key in ("steps", "batch_size", "eval_every", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1")
        if not self.lr > 0:
            raise ValueError("lr must be positive")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.monotone_steps is not None and self.monotone_steps < self.steps:
            raise ValueError("monotone_steps must be >= steps")

    def budget(self, target_loss: float | None) -> int:
        """Step budget of one student: longer for one chasing a width-monotone target."""
        if target_loss is None or self.monotone_steps is None:
            return self.steps
        return self.monotone_steps


def time_weights(T: int, enabled: bool, dtype=torch.float64) -> Tensor | None:
    if not enabled:
        return None
    w = ((torch.arange(T, dtype=dtype) + 1) / (T + 1)) ** 2
    return (w / w.mean())[:, None]  # (t, 1)


def mse(yhat: Tensor, y: Tensor, weights: Tensor | None = None) -> Tensor:
    err = (yhat - y) ** 2
    if weights is not None:
        err = err * weights.to(err.dtype)
    return err.mean()


@torch.no_grad()
def evaluate(model: StudentRNN, x: Tensor, y: Tensor, chunk: int = 1024) -> float:
    """Unweighted MSE over a whole split; inf when the model output is not finite."""
    total = 0.0
    for lo in range(0, len(x), chunk):
        yhat = model(x[lo : lo + chunk])
        total += float(((yhat - y[lo : lo + chunk].to(yhat.dtype)) ** 2).sum())
    loss = total / y.numel()
    return loss if math.isfinite(loss) else math.inf


# ---------------------------------------------------------------------------- the pack
# Most bytes of hidden states (copies x batch x width x dtype size) one packed step holds.
# Measured on a 2-core CPU (T=100, batch 128, tanh, the diagonal students' hand-written
# backward pass): the cost per copy falls up to about 6 copies and stays flat up to 256 KB
# (m=14 float32: 3.2-3.4 ms per copy at r=6, 12 and 24; m=64 float64: 27-29 ms at r=4
# and 8). A larger pack only delays its first finished copies; a split one pays the tail
# of its slowest copy once per sub-pack.
PACK_BYTES = 2**18


def pack_limit(device) -> int:
    """Default bytes of hidden states per packed step: ``PACK_BYTES`` on the CPU, no limit on
    a GPU (there a step is launch-bound: measured, r=720 costs about what r=12 costs)."""
    return PACK_BYTES if torch.device(device).type == "cpu" else 2**62


class Plateau:
    """ReduceLROnPlateau (mode min, relative threshold 1e-4, no cooldown) for one copy."""

    def __init__(self, lr: float, factor: float, patience: int, min_lr: float):
        self.lr, self.factor, self.patience, self.min_lr = lr, factor, patience, min_lr
        self.best, self.bad = math.inf, 0

    def at(self, step: int) -> float:
        """Learning rate of this optimisation step: the one set by the last validation."""
        return self.lr

    def step(self, loss: float) -> float:
        if loss < self.best * (1 - 1e-4):
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            new = max(self.lr * self.factor, self.min_lr)
            if self.lr - new > 1e-8:
                self.lr = new
            self.bad = 0
        return self.lr


class Cosine:
    """Cosine decay from lr at step 0 to min_lr at step ``budget`` (a copy's own budget);
    validation losses do not change it."""

    def __init__(self, lr: float, min_lr: float, budget: int):
        self.start, self.min_lr, self.budget = lr, min(min_lr, lr), budget
        self.lr = lr

    def at(self, step: int) -> float:
        frac = min(step, self.budget) / self.budget
        self.lr = self.min_lr + (self.start - self.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
        return self.lr

    def step(self, loss: float) -> float:
        return self.lr


class Copy:
    """Book-keeping of one student of a pack: its schedule, best state and history."""

    def __init__(self, index: int, cfg: TrainConfig, target_loss: float | None, gen, name=""):
        self.index, self.target_loss, self.generator, self.name = index, target_loss, gen, name
        self.budget = cfg.budget(target_loss)
        if cfg.schedule == "cosine":
            self.schedule = Cosine(cfg.lr, cfg.min_lr, self.budget)
        else:
            self.schedule = Plateau(cfg.lr, cfg.plateau_factor, cfg.plateau_patience, cfg.min_lr)
        self.best_val, self.best_step, self.stale = math.inf, 0, 0
        self.best: Tensor | None = None  # flat raw parameters at the best validation loss
        self.history: list[dict] = []
        self.running: list[float] = []
        self.reason, self.diverged, self.steps, self.steps_done = "budget", False, 0, 0

    def record(self, step: int, val: float, min_eig: float, flat: Tensor) -> None:
        """One validation pass: history row, learning-rate schedule, best state."""
        self.history.append(
            {
                "step": step,
                "train_loss": sum(self.running) / len(self.running),
                "val_loss": val,
                "lr": self.schedule.step(val),  # after the schedule's step, as torch's
                "min_eig": min_eig,
            }
        )
        self.running = []
        if val < self.best_val:
            self.best_val, self.best_step, self.stale = val, step, 0
            self.best = flat.detach().clone()
        else:
            self.stale += 1

    def stop_reason(self, cfg: TrainConfig) -> str | None:
        if self.target_loss is not None and self.best_val <= self.target_loss:
            return "target_loss"
        if cfg.early_stop_patience and self.stale >= cfg.early_stop_patience:
            return "early_stop"
        if self.steps_done >= self.budget:
            return "budget"
        return None

    STATE = ("best_val", "best_step", "stale", "best", "history", "running", "reason")
    STATE += ("diverged", "steps", "steps_done")

    def state(self) -> dict:
        """Everything a resumed run needs of this copy (checkpoints): schedule, early
        stopping, best parameters, history, minibatch generator."""
        return {k: getattr(self, k) for k in self.STATE} | {
            "schedule": dict(vars(self.schedule)),
            "generator": self.generator.get_state(),
        }

    def load_state(self, state: dict, device) -> None:
        for k in self.STATE:
            setattr(self, k, state[k])
        self.best = self.best.to(device)
        vars(self.schedule).update(state["schedule"])
        self.generator.set_state(state["generator"])


class Pack:
    """r students of one structure, activation, width and dtype as one batched model; their
    parameterisations may differ (``maps``: each copy's eigenvalue map f).

    The raw parameters of all copies live in one flat leaf tensor (r, P); the named
    tensors (r, *shape) are views of it, so clipping and AdamW are a few ops on (r, P)
    whatever the number of tensors. Rows are copies; ``keep`` drops stopped ones.
    """

    SPLITS = ("x_train", "y_train", "x_val", "y_val")
    kernel: str | None = None  # the time loop (``student_forward``'s kernel); None: default

    def __init__(self, models: list[StudentRNN], datas: list[dict], device):
        cfg = models[0].config
        shared = asdict(cfg) | {"parameterisation": None}
        for model in models[1:]:
            if asdict(model.config) | {"parameterisation": None} != shared:
                raise ValueError(
                    f"a pack needs equal student configs (but for the parameterisation): "
                    f"{model.config} vs {cfg}"
                )
        if not cfg.has_axes or cfg.structure == "dense":  # no eigenvalue map f
            self.maps = None
        else:
            self.maps = [m.config.parameterisation for m in models]
        self.config = cfg
        first = models[0].raw_params()
        self.names = list(first)
        self.shapes = [tuple(first[k].shape) for k in self.names]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        rows = [
            torch.cat([p.detach().reshape(-1) for p in m.raw_params().values()]) for m in models
        ]
        self.flat = torch.stack(rows).to(device).requires_grad_()  # (r, P)
        dtype = cfg.torch_dtype  # each copy's own splits, stacked: (r, n, t, .)
        self.data = {k: torch.stack([d[k] for d in datas]).to(device, dtype) for k in self.SPLITS}
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)

    def params(self, flat: Tensor | None = None) -> dict[str, Tensor]:
        flat = self.flat if flat is None else flat
        parts = flat.split(self.sizes, dim=1)
        return {
            k: v.reshape(len(flat), *shape)
            for k, v, shape in zip(self.names, parts, self.shapes, strict=True)
        }

    def forward(self, x: Tensor) -> Tensor:
        """x (r, b, t, d) -> yhat (r, b, t, o), copy i on its own batch x[i]."""
        return student_forward(self.params(), x, self.config, maps=self.maps, kernel=self.kernel)

    def minibatch(self, split: str, idx: Tensor) -> Tensor:
        """Rows idx (r, b) of each copy's own split: (r, b, t, .), one ``index_select`` on
        the flattened (r n, t, .) split (advanced indexing is several times slower)."""
        data = self.data[split]
        r, n = data.shape[:2]
        rows = idx.to(data.device) + n * torch.arange(r, device=data.device)[:, None]
        return data.flatten(0, 1).index_select(0, rows.flatten()).view(*idx.shape, *data.shape[2:])

    def keep(self, rows: Tensor) -> None:
        """Keep only these copies (rows): parameters, optimiser state and data."""
        self.data = {k: v[rows] for k, v in self.data.items()}
        if self.maps is not None:
            self.maps = [self.maps[i] for i in rows.tolist()]
        self.flat = self.flat.detach()[rows].requires_grad_()
        self.exp_avg, self.exp_avg_sq = self.exp_avg[rows], self.exp_avg_sq[rows]

    @torch.no_grad()
    def clip_(self, max_norm: float) -> None:
        """Gradient-norm clipping per copy (as torch.nn.utils.clip_grad_norm_ on each)."""
        norm = self.flat.grad.norm(dim=1, keepdim=True)  # (r, 1)
        self.flat.grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))

    @torch.no_grad()
    def adamw_(self, lr: Tensor, step: int, weight_decay: float, betas=(0.9, 0.999), eps=1e-8):
        """One AdamW step (torch.optim.AdamW's update), with a learning rate per copy (r, 1)."""
        b1, b2 = betas
        grad, p = self.flat.grad, self.flat
        if weight_decay:
            p.mul_(1 - lr * weight_decay)
        self.exp_avg.lerp_(grad, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - b2**step)).add_(eps)
        p.addcdiv_(self.exp_avg * (lr / (1 - b1**step)), denom, value=-1.0)
        self.flat.grad = None

    @torch.no_grad()
    def val_losses(self) -> list[float]:
        """Unweighted MSE of each copy on its own validation split, inf where not finite."""
        err = (self.forward(self.data["x_val"]) - self.data["y_val"]) ** 2
        losses = err.flatten(1).mean(1).tolist()
        return [v if math.isfinite(v) else math.inf for v in losses]

    @torch.no_grad()
    def min_eigs(self) -> list[float]:
        """Each copy's smallest eigenvalue; NaN for a family without any (lstm, gru)."""
        eig = eigenvalues(self.params(), self.config, raw=False, maps=self.maps)
        if eig.shape[-1] == 0:
            return [math.nan] * len(self.flat)
        return eig.flatten(1).min(1)[0].tolist()


class TrainingInterruptedError(RuntimeError):
    """Raised by ``train_pack(..., stop_after=k)`` after k steps: a job killed mid-training
    (tests of the checkpoints)."""


def pack_key(models, datas, cfg: TrainConfig, generators, target_losses, names, device) -> str:
    """Hash of everything that decides a pack's training: its settings (but for log_every
    and checkpoint_every), members, targets, initial parameters, data, generator states and
    the device type. A checkpoint resumes only a pack of the same key."""
    h = hashlib.sha256()
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("log_every", "checkpoint_every")}
    meta = {
        "train": settings,
        "names": names,
        "targets": target_losses,
        "students": [asdict(m.config) for m in models],
        "device": torch.device(device).type,
    }
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    tensors = [p for m in models for p in m.raw_params().values()]
    tensors += [d[k] for d in datas for k in Pack.SPLITS] + [g.get_state() for g in generators]
    for t in tensors:
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class Checkpoint:
    """A pack's training state on disk (``train.checkpoint_every``), for a rerun of a job
    killed mid-training to resume from: ``run`` is the state of the sub-pack in training
    (parameters, AdamW moments, every copy's schedule, early stopping, best parameters,
    history and generator, the epoch orders, the step, the global RNG states), ``done`` the
    results of the sub-packs already trained. Written atomically (a temporary file, then
    ``os.replace``); one of another pack or config (``key``) is ignored."""

    def __init__(self, path, every: int, key: str, log):
        self.path, self.every, self.key, self.log = Path(path), every, key, log
        self.done: dict[int, list] = {}
        self.run: dict | None = None
        if not self.path.exists():
            return
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated or foreign file: train from the start
            print(f"checkpoint {self.path} unreadable ({err}): ignored", file=log)
            return
        if not isinstance(saved, dict) or saved.get("key") != key:
            print(f"checkpoint {self.path} is of another pack or config: ignored", file=log)
            return
        self.done, self.run = saved["done"], saved["run"]
        step = self.run["step"] if self.run else 0
        print(
            f"resuming from checkpoint {self.path}: after step {step} "
            f"({len(self.done)} sub-pack(s) done before)",
            file=log,
            flush=True,
        )

    def save(self, run: dict | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            torch.save({"key": self.key, "done": self.done, "run": run}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _snapshot(pack: Pack, copies, active, orders, cursor: int, step: int, part: int) -> dict:
    """The training state after ``step`` of the sub-pack starting at copy ``part``."""
    rng = {"torch": torch.get_rng_state()}
    if pack.flat.is_cuda:
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "part": part,
        "step": step,
        "cursor": cursor,
        "active": [c.index for c in active],
        "orders": orders,
        "flat": pack.flat.detach(),
        "exp_avg": pack.exp_avg,
        "exp_avg_sq": pack.exp_avg_sq,
        "copies": [c.state() for c in copies],
        "rng": rng,
    }


def _restore(run: dict, pack: Pack, copies: list[Copy], device):
    """Load ``_snapshot``'s state into a fresh pack and its copies; returns the active
    copies, their epoch orders, the cursor and the first step still to do."""
    rows = run["active"]
    if len(rows) < len(copies):
        pack.keep(torch.tensor(rows, device=device))
    pack.flat = run["flat"].to(device).requires_grad_()
    pack.exp_avg, pack.exp_avg_sq = run["exp_avg"].to(device), run["exp_avg_sq"].to(device)
    for c, state in zip(copies, run["copies"], strict=True):
        c.load_state(state, device)
    torch.set_rng_state(run["rng"]["torch"])
    if "cuda" in run["rng"]:
        torch.cuda.set_rng_state_all(run["rng"]["cuda"])
    return [copies[i] for i in rows], list(run["orders"]), run["cursor"], run["step"] + 1


def _minibatch(copies: list[Copy], orders: list[Tensor], cursor: int, n: int, size: int):
    """Each copy's next minibatch indices (r, b), drawing a new epoch order when needed."""
    if cursor + size > n:
        for i, c in enumerate(copies):
            orders[i] = torch.randperm(n, generator=c.generator)
        cursor = 0
    return torch.stack([o[cursor : cursor + size] for o in orders]), cursor + size


def train_pack(
    models: list[StudentRNN],
    datas: list[dict],
    cfg: TrainConfig,
    generators: list[torch.Generator],
    target_losses: list[float | None] | None = None,
    device: str | torch.device = "cpu",
    log=sys.stderr,
    names: list[str] | None = None,
    max_bytes: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    stop_after: int | None = None,
) -> list[tuple[StudentRNN, list[dict], dict]]:
    """Train r students as one batched model; each copy as ``train_student`` would alone.

    Every copy keeps its own data, initialisation (the model passed in), minibatch order
    (its generator), AdamW moments, learning-rate schedule, gradient clipping, early stopping and
    width-monotone target loss. A copy that stops is dropped from the pack. A pack holds
    at most ``max_bytes`` of hidden states per step (copies x batch x width; default
    ``PACK_BYTES`` on the CPU, no limit on a GPU, where a pack of hundreds costs about
    what a pack of 12 costs per step: ``make bench``, section gpu); more copies
    are trained as several packs in turn. Returns, per
    copy, the model at its best validation loss (``direct`` projected), its history and a
    summary.

    With ``checkpoint`` (a path) and ``cfg.checkpoint_every`` > 0 the training state is
    written there every that many steps (``Checkpoint``) and removed at the end; a call
    that finds a checkpoint of the same pack resumes from it, with the same results as a
    run never interrupted (but for wall_s). ``stop_after``: raise ``TrainingInterruptedError``
    after that many steps of this call (tests: a job killed mid-training).
    """
    r = len(models)
    names = names or [str(i) for i in range(r)]
    target_losses = target_losses or [cfg.target_loss] * r
    itemsize = torch.empty(0, dtype=models[0].config.torch_dtype).element_size()
    max_bytes = pack_limit(device) if max_bytes is None else max_bytes
    size = max(1, max_bytes // (cfg.batch_size * models[0].config.width * itemsize))
    ckpt = None
    if checkpoint is not None and cfg.checkpoint_every > 0:
        key = pack_key(models, datas, cfg, generators, target_losses, names, device)
        ckpt = Checkpoint(checkpoint, cfg.checkpoint_every, key + f"/{size}", log)
    stop = [stop_after]  # steps left before TrainingInterruptedError, over all sub-packs
    out = []
    for lo in range(0, r, size):  # sub-packs, one after the other: the same results, faster
        part = slice(lo, lo + size)
        if ckpt is not None and lo in ckpt.done:  # trained before the job was killed
            out += _restore_done(models[part], ckpt.done[lo], device)
            continue
        out += _train_part(
            models[part], datas[part], cfg, generators[part], target_losses[part],
            device, log, names[part], ckpt, lo, stop,
        )  # fmt: skip
        if ckpt is not None and lo + size < r:
            ckpt.done[lo] = [
                ({k: v.detach().cpu() for k, v in m.raw_params().items()}, h, s)
                for m, h, s in out[lo:]
            ]
            ckpt.save()
    if ckpt is not None:
        ckpt.remove()
    return out


def _restore_done(models, done: list, device) -> list:
    """Results of a sub-pack trained before the job was killed, from its checkpoint."""
    out = []
    for model, (params, history, summary) in zip(models, done, strict=True):
        model.to(device)
        with torch.no_grad():
            for k, v in model.raw_params().items():
                v.copy_(params[k])
        out.append((model, history, summary))
    return out


def _train_part(
    models, datas, cfg, generators, target_losses, device, log, names, ckpt, part, stop
) -> list:
    """``train_pack`` of one sub-pack (copies ``part``, ``part + 1``, ...), resumed from
    ``ckpt`` when it holds this sub-pack's state."""
    start = time.perf_counter()
    pack = Pack(models, datas, device)
    pack.kernel = cfg.kernel
    weights = time_weights(pack.data["x_train"].shape[2], cfg.time_weighting, pack.flat.dtype)
    weights = weights.to(device) if weights is not None else None
    copies = [
        Copy(i, cfg, t, g, names[i])
        for i, (t, g) in enumerate(zip(target_losses, generators, strict=True))
    ]
    for c in copies:
        c.best = pack.flat[c.index].detach().clone()
    active, n = list(copies), pack.data["x_train"].shape[1]
    orders = [torch.randperm(n, generator=c.generator) for c in copies]
    cursor, first = 0, 1
    if ckpt is not None and ckpt.run is not None and ckpt.run["part"] == part:
        active, orders, cursor, first = _restore(ckpt.run, pack, copies, device)
    step = first - 1
    for step in range(first, max(c.budget for c in copies) + 1):
        if stop[0] is not None:  # tests: a job killed after stop_after steps
            if stop[0] <= 0:
                raise TrainingInterruptedError(f"stopped before step {step} (stop_after)")
            stop[0] -= 1
        idx, cursor = _minibatch(active, orders, cursor, n, cfg.batch_size)
        stopped = _optimise(pack, active, idx, weights, cfg, step, log)
        if not step % cfg.eval_every or any(step == c.budget for c in active):
            stopped += _validate(pack, active, stopped, cfg, step, log)
        if stopped:
            keep = [i for i, c in enumerate(active) if c not in stopped]
            active, orders = [active[i] for i in keep], [orders[i] for i in keep]
            if not active:
                break
            pack.keep(torch.tensor(keep, device=device))
        if ckpt is not None and not step % ckpt.every:
            ckpt.save(_snapshot(pack, copies, active, orders, cursor, step, part))
            print(f"step {step}: checkpoint {ckpt.path}", file=log, flush=True)
    for c in active:
        c.steps = step
    wall = time.perf_counter() - start
    return [
        _finish(m, c, datas[c.index], pack, device, wall, log)
        for m, c in zip(models, copies, strict=True)
    ]


def _optimise(pack: Pack, active: list[Copy], idx: Tensor, weights, cfg, step, log) -> list:
    """One AdamW step of every active copy on its own minibatch; returns the copies whose
    training loss turned non-finite (they are recorded as diverged and leave the pack)."""
    xb, yb = (pack.minibatch(k, idx) for k in ("x_train", "y_train"))  # (r, b, t, .)
    err = (pack.forward(xb) - yb) ** 2
    if weights is not None:
        err = err * weights.to(err.dtype)
    losses = err.flatten(1).mean(1)  # (r,): each copy's own MSE
    finite = torch.isfinite(losses)
    diverged = [c for c, ok in zip(active, finite.tolist(), strict=True) if not ok]
    for c in diverged:
        c.diverged, c.reason, c.steps = True, "diverged", step
        print(f"[{c.name}] step {step}: training loss is not finite", file=log)
    losses[finite].sum().backward()  # copies share no parameter: separate gradients
    if cfg.clip_norm > 0:
        pack.clip_(cfg.clip_norm)
    lr = torch.tensor([[c.schedule.at(step)] for c in active], dtype=pack.flat.dtype)
    pack.adamw_(lr.to(pack.flat.device), step, cfg.weight_decay)
    for c, v in zip(active, losses.tolist(), strict=True):
        c.running.append(v)
        c.steps_done = step
    return diverged


def _validate(pack: Pack, active: list[Copy], stopped: list, cfg, step, log) -> list:
    """Validation of the copies due at this step: history, schedule, best state, progress
    line; returns the copies that stop here (target reached, early stop, budget)."""
    vals, eigs, stop = pack.val_losses(), pack.min_eigs(), []
    for i, c in enumerate(active):
        if c in stopped or (step % cfg.eval_every and step != c.budget):
            continue  # validation is due for another copy only
        c.record(step, vals[i], eigs[i], pack.flat[i])
        if step % cfg.log_every < cfg.eval_every:
            h = c.history[-1]
            print(
                f"[{c.name}] step {step}/{c.budget} train {h['train_loss']:.3e} "
                f"val {vals[i]:.3e} lr {h['lr']:.1e} min_eig {h['min_eig']:.4f}",
                file=log,
                flush=True,
            )
        reason = c.stop_reason(cfg)
        if reason:
            c.reason, c.steps = reason, step
            stop.append(c)
    return stop


def _finish(model, c: Copy, data, pack: Pack, device, wall, log):
    """Load a copy's best state into its model, project it and summarise its run."""
    model.to(device)
    best = pack.params(c.best.unsqueeze(0))
    with torch.no_grad():
        for k, v in model.raw_params().items():
            v.copy_(best[k][0])
    model.project_()
    eig = model.eigenvalues(raw=True)
    if eig.numel() == 0:  # lstm, gru: no recurrence matrix
        eig = torch.full((1,), math.nan)
    dtype = model.config.torch_dtype
    x_tr, y_tr, x_va, y_va = (
        data[k].to(device, dtype) for k in ("x_train", "y_train", "x_val", "y_val")
    )
    summary = {
        "steps": c.steps,
        "best_step": c.best_step,
        "stop_reason": c.reason,
        "diverged": c.diverged and not math.isfinite(c.best_val),
        "train_loss": evaluate(model, x_tr, y_tr),
        "val_loss": evaluate(model, x_va, y_va),
        "min_eig": float(eig.min()),
        "max_eig": float(eig.max()),
        "target_loss": c.target_loss,
        "monotone_ok": None if c.target_loss is None else bool(c.best_val <= c.target_loss),
        "wall_s": wall,
    }
    print(
        f"[{c.name}] done: {c.reason} at step {c.steps}, best val {c.best_val:.3e} at step "
        f"{c.best_step}, eigenvalues in [{summary['min_eig']:.4f}, {summary['max_eig']:.4f}]",
        file=log,
        flush=True,
    )
    return model, c.history, summary


def train_student(
    model: StudentRNN,
    data: dict,
    cfg: TrainConfig,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    log=sys.stderr,
) -> tuple[StudentRNN, list[dict], dict]:
    """Train one student on ``data`` (the dict of ``make_target``): a pack of one.

    Returns the model at its best validation loss (``direct`` projected, so evaluation
    with w itself is exact), the history (one row per validation pass) and a summary.
    """
    return train_pack([model], [data], cfg, [generator], device=device, log=log)[0]


def resolve_device(device: str = "auto") -> torch.device:
    """auto -> cuda when available, else cpu; the env var CURSE_MEMORY_DEVICE overrides."""
    device = os.environ.get("CURSE_MEMORY_DEVICE", device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but torch sees no CUDA device")
    return torch.device(device)
