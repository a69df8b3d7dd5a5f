"""Check your own model: a plain torch.nn.GRU learns a polynomial-memory target; print its
memory-decay fit (against the target's) and its perturbation curve E(beta).

    pip install -e .            # once, from the repository root
    python examples/own_model.py

About 10-20 s on one CPU core. See docs/api.md for the functions used here.
"""

import time

import torch

from curse_memory import api


class GRUModel(torch.nn.Module):
    """A plain GRU with a linear readout at every step: (batch, time, 1) -> (batch, time, 1)."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.gru = torch.nn.GRU(1, hidden, batch_first=True)
        self.readout = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        return self.readout(self.gru(x)[0])


def main(steps: int = 200, seed: int = 0) -> None:
    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    # the target: y_k = sum_j rho(j) x_{k-j}, rho(t) = (1 + 0.1 t)^(-1.1), a polynomial memory
    spec = api.TargetSpec(kind="linear", kernel="pol", T=100)
    data = api.make_target(spec, n_train=512, n_val=64, n_test=128, seed=seed)
    x, y = data["x_train"].float(), data["y_train"].float()
    x_test, y_test = data["x_test"].float(), data["y_test"].float()

    model = GRUModel()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        batch = torch.randint(0, len(x), (64,))
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimiser.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d}  train mse {loss.item():.4g}")
    with torch.no_grad():
        test = torch.nn.functional.mse_loss(model(x_test), y_test).item()
    print(f"test mse {test:.4g} (target variance {data['y_var']:.4g})")

    # memory functions over 10,000 steps (the GRU in float64 for a clean tail)
    horizon = 10000
    t, target_memory = api.memory_function(spec.functional(), horizon)
    _, model_memory = api.memory_function(model.double(), horizon)
    model.float()
    print("\nmemory decay (tail t >= 10):")
    for name, memory in (("target", target_memory), ("GRU", model_memory)):
        fit = api.memory_decay_fit(t, memory, t_min=10)
        print(
            f"  {name:6s} {fit['decay']:12s} rate_exp {fit['rate_exp']:.3g} "
            f"(R2 {fit['fit_exp']:.3f})  rate_pol {fit['rate_pol']:.3g} (R2 {fit['fit_pol']:.3f})"
        )

    # perturbation curve: 6 draws per beta, every parameter tensor max-abs beta
    betas = api.beta_grid(beta_min=1e-3, step=1.0, n=11)
    gen = torch.Generator().manual_seed(seed)
    curve = api.perturbation_curve(model, x_test, y_test, betas, repeats=6, generator=gen)
    print("\nperturbation curve E(beta) (inf norm, 6 draws):")
    for beta, value in zip(curve["beta"], curve["monotone"], strict=True):
        print(f"  beta {beta:8.4g}  E {value:.4g}")
    print(f"\ndone in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
