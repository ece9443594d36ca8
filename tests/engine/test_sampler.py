"""The sampler: filters, replayable per-request randomness (C5), parameter validation."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from auditlog.engine.sampler import (  # noqa: E402
    SamplingParams,
    make_generator,
    probs_from_logits,
    sample,
)
from auditlog.errors import EngineError, InvalidRequestError  # noqa: E402

pytestmark = pytest.mark.engine

NUM_DRAWS = 20_000


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson chi-square goodness of fit; a count on a zero-probability cell gives 0.0."""
    counts, probs = counts.double(), probs.double()
    if bool((counts[probs == 0] > 0).any()):
        return 0.0
    support = probs > 0
    expected = probs[support] * counts.sum()
    stat = ((counts[support] - expected) ** 2 / expected).sum()
    dof = int(support.sum()) - 1
    return 1.0 if dof == 0 else float(torch.special.gammaincc(torch.tensor(dof / 2), stat / 2))


def draw_many(logits: torch.Tensor, params: SamplingParams, n: int = NUM_DRAWS) -> torch.Tensor:
    """n independent requests (seeds 0..n-1) sampling the same logits -> bincount [V]."""
    batch = logits.expand(n, logits.numel())
    tokens = sample(batch, [params] * n, [make_generator(s) for s in range(n)])
    return torch.bincount(tokens, minlength=logits.numel())


LOGITS = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0])


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_samples_match_softmax(temperature: float) -> None:
    counts = draw_many(LOGITS, SamplingParams(temperature=temperature))
    assert chi_square_pvalue(counts, torch.softmax(LOGITS / temperature, -1)) > 1e-4


def test_wrong_temperature_is_detected() -> None:
    counts = draw_many(LOGITS, SamplingParams(temperature=1.0))
    assert chi_square_pvalue(counts, torch.softmax(LOGITS / 1.2, -1)) < 1e-9


def test_greedy_is_argmax_with_first_index_on_ties() -> None:
    logits = torch.tensor([[0.0, 3.0, 3.0, 1.0], [5.0, -1.0, 5.0, 0.0]])
    params = [SamplingParams(), SamplingParams(top_k=1, top_p=0.1)]  # filters do not matter
    probs = probs_from_logits(logits, params)
    assert torch.equal(probs, torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0]]))
    tokens = sample(logits, params, [make_generator(1), make_generator(2)])
    assert tokens.tolist() == [1, 0]


def test_top_k_keeps_only_the_k_largest_renormalised() -> None:
    probs = probs_from_logits(LOGITS[None], [SamplingParams(temperature=1.0, top_k=3)])[0]
    expected = torch.zeros(8)
    expected[:3] = torch.softmax(LOGITS[:3], -1)
    torch.testing.assert_close(probs, expected)
    counts = draw_many(LOGITS, SamplingParams(temperature=1.0, top_k=3))
    assert counts[3:].sum() == 0
    assert chi_square_pvalue(counts, expected) > 1e-4


@pytest.mark.parametrize(("top_p", "kept"), [(0.75, 2), (0.85, 3), (0.01, 1), (1.0, 4)])
def test_top_p_keeps_the_shortest_prefix_reaching_the_mass(top_p: float, kept: int) -> None:
    base = torch.tensor([0.5, 0.3, 0.15, 0.05])
    params = SamplingParams(temperature=1.0, top_p=top_p)
    probs = probs_from_logits(base.log()[None], [params])[0]
    expected = torch.zeros(4)
    expected[:kept] = base[:kept] / base[:kept].sum()
    torch.testing.assert_close(probs, expected)


def test_top_k_then_top_p_then_sampling_stays_inside_both() -> None:
    params = SamplingParams(temperature=0.8, top_k=5, top_p=0.6)
    probs = probs_from_logits(LOGITS[None], [params])[0]
    scaled = torch.softmax(LOGITS[:5] / 0.8, -1)
    kept = int((scaled.cumsum(0) - scaled < 0.6).sum())
    assert int((probs > 0).sum()) == kept
    counts = draw_many(LOGITS, params)
    assert counts[kept:].sum() == 0


def test_row_sample_is_independent_of_batch_neighbours() -> None:
    """C5: a request's token depends only on its logits, params and generator."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 300, generator=g) * 3
    params = [
        SamplingParams(temperature=t, top_k=k, top_p=p, seed=i)
        for i, (t, k, p) in enumerate(
            [
                (0.0, 0, 1.0),
                (1.0, 0, 1.0),
                (0.7, 50, 1.0),
                (1.3, 0, 0.9),
                (0.5, 10, 0.5),
                (2.0, 0, 1.0),
            ]
            * 2
        )
    ]
    gens = [make_generator(p.seed) for p in params]
    together_probs = probs_from_logits(logits, params)
    together = [sample(logits, params, gens).tolist() for _ in range(5)]
    for row, p in enumerate(params):
        alone_probs = probs_from_logits(logits[row : row + 1], [p])
        assert torch.equal(alone_probs[0], together_probs[row])
        gen = make_generator(p.seed)
        alone = [sample(logits[row : row + 1], [p], [gen]).item() for _ in range(5)]
        assert alone == [draw[row] for draw in together]


def test_each_row_consumes_exactly_one_uniform() -> None:
    gens = [make_generator(3), make_generator(4)]
    sample(torch.zeros(2, 10), [SamplingParams(), SamplingParams(temperature=1.0)], gens)
    for gen in gens:
        reference = make_generator(gen.initial_seed())
        torch.rand(1, generator=reference, dtype=torch.float64)
        assert torch.equal(gen.get_state(), reference.get_state())


def test_same_seed_replays_same_tokens() -> None:
    params = SamplingParams(temperature=1.0, seed=1234)
    runs = []
    for _ in range(2):
        gen = make_generator(params.seed)
        runs.append([sample(LOGITS[None], [params], [gen]).item() for _ in range(50)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1


def test_zero_probability_tokens_are_never_drawn() -> None:
    logits = torch.full((1, 6), -math.inf)
    logits[0, 4] = 0.0
    params = [SamplingParams(temperature=1.0)] * 200
    tokens = sample(logits.expand(200, 6), params, [make_generator(s) for s in range(200)])
    assert set(tokens.tolist()) == {4}


def test_shape_mismatch_raises_engine_error() -> None:
    with pytest.raises(EngineError, match="logits must be"):
        probs_from_logits(torch.zeros(3, 5), [SamplingParams()] * 2)
    with pytest.raises(EngineError, match="one generator per row"):
        sample(torch.zeros(2, 5), [SamplingParams()] * 2, [make_generator(0)])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"temperature": math.nan}, "temperature must be finite"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"top_k": 2.5}, "top_k must be an integer"),
        ({"max_tokens": 0}, "max_tokens must be >= 1"),
        ({"max_tokens": True}, "max_tokens must be an integer"),
        ({"seed": -1}, "seed must be in"),
        ({"seed": 2**63}, "seed must be in"),
        ({"stop": ("",)}, "stop must be a tuple of non-empty strings"),
        ({"stop": ["x"]}, "stop must be a tuple"),
        ({"stop_token_ids": (-3,)}, "stop_token_ids must be"),
        ({"ignore_eos": 1}, "ignore_eos must be a bool"),
    ],
)
def test_validate_rejects_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        SamplingParams(**kwargs).validate()  # type: ignore[arg-type]


def test_to_record_has_no_floats_and_round_trips() -> None:
    params = SamplingParams(
        temperature=0.7,
        top_k=40,
        top_p=0.95,
        max_tokens=128,
        seed=2**63 - 1,
        stop=("\nCustomer:",),
        stop_token_ids=(257,),
        ignore_eos=True,
    )
    params.validate()
    record = params.to_record()
    assert record["temperature"] == "0.7"
    assert record["top_p"] == "0.95"
    assert record["seed"] == str(2**63 - 1)  # beyond 2^53 - 1: a decimal string

    def no_floats(value: object) -> bool:
        if isinstance(value, float):
            return False
        if isinstance(value, dict):
            return all(no_floats(v) for v in value.values())
        if isinstance(value, list):
            return all(no_floats(v) for v in value)
        return True

    assert no_floats(record)
    assert SamplingParams.from_record(json.loads(json.dumps(record))) == params
    assert SamplingParams(temperature=1e-5).to_record()["temperature"] == "0.00001"
    assert SamplingParams(temperature=2).to_record()["temperature"] == "2.0"


def test_from_record_rejects_bad_records() -> None:
    record = SamplingParams().to_record()
    with pytest.raises(InvalidRequestError, match="bad sampling parameter record"):
        SamplingParams.from_record({k: v for k, v in record.items() if k != "seed"})
    with pytest.raises(InvalidRequestError, match="top_p must be in"):
        SamplingParams.from_record({**record, "top_p": "1.5"})
