"""The NIR paper's single-LIF comparison (github.com/neuromorphs/NIR, paper/01_lif): exact spike times and the
classification of the frameworks' disagreements by threshold margin (exact-solvers.md section 7)."""

from __future__ import annotations

import numpy as np
from reference_helpers import a, chain

from snn_deploy.nodes import LIF, Linear
from snn_deploy.sim.exact import LIF as ExLIF
from snn_deploy.sim.exact_graph import simulate_graph
from snn_deploy.sim.timing import StepConvention, teacher_forced, voltage_error_bound

DT, TAU, TH = 1e-4, 2.5e-3, 0.1
# stimulus of paper/01_lif/lif_exact_sim.py (lif_nir): one entry per 1 ms, each followed by 9 empty 0.1 ms bins
_D0 = [
    0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
]  # fmt: skip
EXACT_MS = (46.084386, 51.089752, 71.091961, 76.090890)  # continuous exact spike times (section 7)


def _stimulus() -> np.ndarray:
    d = np.zeros((len(_D0) * 10, 1), np.int64)
    d[::10, 0] = _D0
    return d


def _discrete(x: np.ndarray, gain: float) -> np.ndarray:
    """Discrete LIF: exact decay, input gain ``gain``, threshold at the step end, subtractive reset."""
    beta, v, out = np.exp(-DT / TAU), 0.0, np.zeros(x.shape, np.int64)
    for k in range(x.shape[0]):
        v = beta * v + gain * x[k, 0]
        if v >= TH:
            out[k, 0], v = 1, v - TH
    return out


def test_stimulus_has_the_papers_length():
    assert _stimulus().shape == (1000, 1) and int(_stimulus().sum()) == 34


def test_exact_spike_times_of_the_paper():
    g = chain(
        (1,),
        Linear("fc", weight=np.array([[1.0]])),
        LIF("lif", tau=a(TAU), r=a(1.0), v_leak=a(0.0), v_threshold=a(TH), v_reset=a(0.0)),
        dt=DT,
        reset="subtract",
    )
    t, _ = simulate_graph(g, _stimulus(), dt=DT, semantics="pulse")[0]["lif"]
    np.testing.assert_allclose(t * 1e3, EXACT_MS, atol=1e-6)


def test_framework_conventions_classified_by_margin():
    x = _stimulus().astype(float)
    p, conv, w = ExLIF(TAU, v_th=TH, reset="subtract"), StepConvention(DT), np.array([[1.0]])
    exact_zoh = _discrete(x, 1 - np.exp(-DT / TAU))  # norse/snnTorch/exact csv: rows 460, 510, 710, 760
    assert list(np.nonzero(exact_zoh[:, 0])[0]) == [460, 510, 710, 760]
    rep = teacher_forced(exact_zoh, w, p, conv, tol_v=1e-9, pulse=x)
    assert rep.counts["match"] == 4 and rep.counts["unexplained"] == 0
    rockpool = _discrete(x, DT / TAU)  # Rockpool/Sinabs inject dt/tau instead of 1 - exp(-dt/tau): ~2 % high
    assert list(np.nonzero(rockpool[:, 0])[0]) == [450, 500, 710, 760]
    beta = np.exp(-DT / TAU)
    tol = voltage_error_bound(0.0, DT, TAU, disc=abs(DT / TAU - (1 - beta)) * 1.0 / (1 - beta))
    rep = teacher_forced(rockpool, w, p, conv, tol_v=tol, pulse=x)
    # teacher forcing: only row 450 is a real disagreement; row 500 follows from it (after the forced reset at
    # 450 the exact model crosses in interval 500 too), so it matches instead of cascading
    assert list(rep.label[rep.step >= 0]) == ["marginal", "match", "match", "match"]
    assert rep.counts["unexplained"] == 0 and rep.counts["missed"] == 0
    # the row-450 near miss: the exact V peaks 0.95 % below threshold (section 7)
    np.testing.assert_allclose(rep.margin[0] / TH, 0.0095, atol=5e-4)
    # one step late (Lava's pipeline) is explained by the declared latency, not by a bound
    late = np.roll(exact_zoh, 1, axis=0)
    rep = teacher_forced(late, w, p, StepConvention(DT, latency_steps=1), tol_v=1e-9, pulse=x)
    assert rep.counts["match"] == 4
