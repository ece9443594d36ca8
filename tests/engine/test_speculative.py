"""Rejection sampling in ``verify_drafts`` preserves the target distribution (C6), and the test has
the power to catch a wrong rule: the same statistical check fails on deliberately broken variants.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")

from auditlog.engine import speculative  # noqa: E402
from auditlog.engine.sampler import make_generator  # noqa: E402
from auditlog.engine.speculative import verify_drafts  # noqa: E402
from auditlog.errors import EngineError  # noqa: E402
from auditlog.events import Provenance  # noqa: E402

pytestmark = pytest.mark.engine

NUM_DRAWS = 20_000
P_VALUE_FLOOR = 1e-4  # a correct rule passes each fixed-seed check above this
P_VALUE_BROKEN = 1e-9  # a broken rule must fail at least one check far below it


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson chi-square goodness of fit; a count on a zero-probability cell gives 0.0."""
    counts, probs = counts.double(), probs.double()
    if bool((counts[probs == 0] > 0).any()):
        return 0.0
    support = probs > 0
    expected = probs[support] * counts.sum()
    stat = ((counts[support] - expected) ** 2 / expected).sum()
    dof = int(support.sum()) - 1
    if dof == 0:
        return 1.0
    # chi2 survival function = upper regularised gamma Q(dof / 2, stat / 2)
    return float(torch.special.gammaincc(torch.tensor(dof / 2), stat / 2))


def dist(*weights: float) -> torch.Tensor:
    t = torch.tensor(weights, dtype=torch.float32)
    return t / t.sum()


# (p, q) pairs on a vocabulary of 6 tokens
PAIRS = {
    "overlapping": (dist(5, 3, 1, 1, 0, 0), dist(1, 1, 1, 1, 1, 1)),
    "draft_too_sharp": (dist(1, 1, 1, 1, 1, 1), dist(10, 1, 0, 0, 0, 1)),
    "disjoint_support": (dist(1, 2, 3, 0, 0, 0), dist(0, 0, 0, 3, 2, 1)),
    "draft_misses_mass": (dist(1, 1, 4, 4, 0, 0), dist(6, 3, 1, 0, 0, 0)),
    "equal": (dist(4, 3, 2, 1, 0, 0), dist(4, 3, 2, 1, 0, 0)),
}


def generators(n: int, base: int) -> list[torch.Generator]:
    return [make_generator(base + i) for i in range(n)]


def first_token_pvalue(p: torch.Tensor, q: torch.Tensor, seed: int) -> float:
    """k = 1: draft x ~ q, verify against p; the emitted first token must be ~ p."""
    vocab = p.numel()
    g = torch.Generator().manual_seed(seed)
    drafts = torch.multinomial(q.expand(NUM_DRAWS, vocab), 1, replacement=True, generator=g)
    draft_probs = q.expand(NUM_DRAWS, 1, vocab)  # [B, 1, V]
    bonus = dist(*range(1, vocab + 1))
    target_probs = torch.stack([p, bonus]).expand(NUM_DRAWS, 2, vocab)  # [B, 2, V]
    out = verify_drafts(drafts, draft_probs, target_probs, generators(NUM_DRAWS, seed * 100_000))
    first = torch.tensor([tokens[0] for tokens, _ in out])
    return chi_square_pvalue(torch.bincount(first, minlength=vocab), p)


def all_pairs_pvalues() -> Iterator[tuple[str, float]]:
    for seed, (name, (p, q)) in enumerate(PAIRS.items(), start=1):
        yield name, first_token_pvalue(p, q, seed)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_rejection_sampling_preserves_target_distribution(name: str) -> None:
    p, q = PAIRS[name]
    assert first_token_pvalue(p, q, seed=7) > P_VALUE_FLOOR


def _accept_with_inverted_ratio(p: torch.Tensor, q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return u * p < q  # wrong: accept with min(1, q / p)


def _recover_from_target(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return p  # wrong: resample from p instead of norm(max(0, p - q))


def _always_accept(p: torch.Tensor, q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(p, dtype=torch.bool)  # wrong: trust the draft


@pytest.mark.parametrize(
    ("attr", "broken"),
    [
        ("_accept_mask", _accept_with_inverted_ratio),
        ("_recovery_probs", _recover_from_target),
        ("_accept_mask", _always_accept),
    ],
)
def test_broken_rule_fails_the_same_check(
    monkeypatch: pytest.MonkeyPatch, attr: str, broken: object
) -> None:
    monkeypatch.setattr(speculative, attr, broken)
    worst = min(pv for _, pv in all_pairs_pvalues())
    assert worst < P_VALUE_BROKEN


def test_second_position_given_first_is_target_conditional() -> None:
    """k = 2 with a context-dependent target: given x0 = a was accepted, x1 ~ P1[a]."""
    vocab, n = 4, NUM_DRAWS
    gen = torch.Generator().manual_seed(11)
    p0, q0 = dist(4, 3, 2, 1), dist(1, 1, 1, 1)
    p1 = torch.stack([dist(1, 0, 0, 3), dist(1, 1, 1, 1), dist(0, 5, 1, 0), dist(2, 2, 0, 1)])
    q1 = torch.stack([dist(1, 1, 1, 1), dist(4, 1, 1, 0), dist(1, 1, 1, 1), dist(0, 1, 3, 1)])
    x0 = torch.multinomial(q0.expand(n, vocab), 1, replacement=True, generator=gen)[:, 0]
    x1 = torch.multinomial(q1[x0], 1, replacement=True, generator=gen)[:, 0]
    drafts = torch.stack([x0, x1], dim=1)  # [B, 2]
    draft_probs = torch.stack([q0.expand(n, vocab), q1[x0]], dim=1)  # [B, 2, V]
    target_probs = torch.stack([p0.expand(n, vocab), p1[x0], dist(1, 1, 1, 1).expand(n, vocab)], 1)
    out = verify_drafts(drafts, draft_probs, target_probs, generators(n, 500_000))
    firsts = torch.tensor([t[0] for t, _ in out])
    assert chi_square_pvalue(torch.bincount(firsts, minlength=vocab), p0) > P_VALUE_FLOOR
    for a in range(vocab):
        seconds = [t[1] for t, prov in out if len(t) >= 2 and t[0] == a]
        counts = torch.bincount(torch.tensor(seconds), minlength=vocab)
        assert chi_square_pvalue(counts, p1[a]) > P_VALUE_FLOOR


def one_hot(index: int, vocab: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(index), vocab).float()


def test_greedy_reduces_to_accept_while_draft_equals_argmax() -> None:
    vocab, k, batch = 7, 4, 200
    g = torch.Generator().manual_seed(3)
    target_argmax = torch.randint(0, vocab, (batch, k + 1), generator=g)
    # drafts agree with the target's argmax ~70% of the time
    agree = torch.rand(batch, k, generator=g) < 0.7
    drafts = torch.where(
        agree, target_argmax[:, :k], torch.randint(0, vocab, (batch, k), generator=g)
    )
    target_probs = torch.nn.functional.one_hot(target_argmax, vocab).float()
    draft_probs = torch.nn.functional.one_hot(drafts, vocab).float()
    out = verify_drafts(drafts, draft_probs, target_probs, generators(batch, 0))
    for row in range(batch):
        expected: list[int] = []
        for i in range(k):
            if int(drafts[row, i]) != int(target_argmax[row, i]):
                break
            expected.append(int(drafts[row, i]))
        n_acc = len(expected)
        expected.append(int(target_argmax[row, n_acc]))
        tokens, prov = out[row]
        assert tokens == expected
        last = Provenance.BONUS if n_acc == k else Provenance.TARGET_RECOVERED
        assert prov == [Provenance.DRAFT_ACCEPTED] * n_acc + [last]


def test_num_drafts_limits_each_row_and_sets_bonus_slot() -> None:
    vocab = 5
    drafts = torch.tensor([[1, 2, 3, 4]] * 3)
    draft_probs = torch.nn.functional.one_hot(drafts, vocab).float()
    # the target agrees with every draft; its bonus distributions name the slot they come from
    target_argmax = torch.tensor([[1, 2, 3, 4, 0]] * 3)
    target_probs = torch.nn.functional.one_hot(target_argmax, vocab).float()
    num = torch.tensor([4, 2, 0])
    out = verify_drafts(drafts, draft_probs, target_probs, generators(3, 0), num_drafts=num)
    assert out[0] == ([1, 2, 3, 4, 0], [Provenance.DRAFT_ACCEPTED] * 4 + [Provenance.BONUS])
    assert out[1] == ([1, 2, 3], [Provenance.DRAFT_ACCEPTED] * 2 + [Provenance.BONUS])
    assert out[2] == ([1], [Provenance.BONUS])


def test_each_row_consumes_num_drafts_plus_one_uniforms() -> None:
    """C5: the random stream a row uses depends on that row alone."""
    vocab, k = 6, 3
    p = torch.softmax(torch.randn(2, k + 1, vocab, generator=torch.Generator().manual_seed(1)), -1)
    q = torch.softmax(torch.randn(2, k, vocab, generator=torch.Generator().manual_seed(2)), -1)
    drafts = torch.tensor([[0, 1, 2], [3, 4, 5]])
    gens = generators(2, 40)
    verify_drafts(drafts, q, p, gens, num_drafts=torch.tensor([3, 1]))
    for gen, used in zip(gens, (4, 2), strict=True):
        reference = make_generator(gen.initial_seed())
        torch.rand(used, generator=reference, dtype=torch.float64)
        assert torch.equal(gen.get_state(), reference.get_state())


def test_row_result_is_independent_of_batch_neighbours() -> None:
    vocab, k, batch = 9, 4, 16
    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(batch, k + 1, vocab, generator=g), -1)
    q = torch.softmax(torch.randn(batch, k, vocab, generator=g), -1)
    drafts = torch.multinomial(q.reshape(-1, vocab), 1, generator=g).reshape(batch, k)
    num = torch.randint(0, k + 1, (batch,), generator=g)
    together = verify_drafts(drafts, q, p, generators(batch, 90), num_drafts=num)
    for row in range(batch):
        alone = verify_drafts(
            drafts[row : row + 1],
            q[row : row + 1],
            p[row : row + 1],
            [make_generator(90 + row)],
            num_drafts=num[row : row + 1],
        )
        assert alone[0] == together[row]


def test_zero_drafts_is_plain_target_sampling() -> None:
    p = dist(0, 0, 1, 0).expand(2, 1, 4)
    out = verify_drafts(
        torch.empty(2, 0, dtype=torch.long), torch.empty(2, 0, 4), p, generators(2, 0)
    )
    assert out == [([2], [Provenance.BONUS])] * 2


@pytest.mark.parametrize(
    ("drafts", "q", "p", "n_gen", "match"),
    [
        ((2, 3), (2, 3, 5), (2, 3, 5), 2, "target_probs must be"),
        ((2, 3), (2, 3, 4), (2, 4, 5), 2, "draft_probs must be"),
        ((2, 3), (2, 3, 5), (2, 4, 5), 1, "one generator per row"),
        ((6,), (2, 3, 5), (2, 4, 5), 2, "draft_tokens must be"),
    ],
)
def test_bad_shapes_raise_engine_error(
    drafts: tuple[int, ...], q: tuple[int, ...], p: tuple[int, ...], n_gen: int, match: str
) -> None:
    with pytest.raises(EngineError, match=match):
        verify_drafts(
            torch.zeros(drafts, dtype=torch.long),
            torch.full(q, 0.2),
            torch.full(p, 0.2),
            generators(n_gen, 0),
        )


def test_num_drafts_out_of_range_raises() -> None:
    with pytest.raises(EngineError, match="num_drafts must be"):
        verify_drafts(
            torch.zeros(1, 2, dtype=torch.long),
            torch.full((1, 2, 3), 1 / 3),
            torch.full((1, 3, 3), 1 / 3),
            generators(1, 0),
            num_drafts=torch.tensor([3]),
        )
