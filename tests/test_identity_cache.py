"""IdentityCache: what is worked out from a message is worked out once per message object."""

from __future__ import annotations

from typing import Any

from memgpt_lab.llm.base import IdentityCache, TokenEstimator, estimate_tokens


def counting() -> tuple[IdentityCache, list[Any]]:
    seen: list[Any] = []

    def compute(item: Any) -> int:
        seen.append(item)
        return len(item["content"])

    return IdentityCache(compute), seen


def test_each_item_is_computed_once_while_it_is_looked_up() -> None:
    cache, seen = counting()
    a, b = {"content": "one"}, {"content": "three"}
    assert cache([a, b]) == [3, 5]
    assert cache([a, b, a]) == [3, 5, 3]
    assert seen == [a, b]


def test_items_are_told_apart_by_identity_not_equality() -> None:
    cache, seen = counting()
    a = {"content": "same"}
    twin = dict(a)
    assert cache([a, twin]) == [4, 4]
    assert len(seen) == 2  # an edited copy of a message must not share its value


def test_a_forgotten_items_id_reused_by_a_new_object_is_computed_afresh() -> None:
    cache, seen = counting()
    for n in range(600):  # each list holds one new item: the old ones are forgotten
        item = {"content": "x" * (n % 7)}
        assert cache([item]) == [n % 7]
        del item  # freed once the cache forgets it: its id may then come back
    assert len(seen) == 600
    assert len(cache._values) <= 2 * 1 + 256 + 1  # bounded, whatever passed through


def test_token_estimator_is_the_lists_estimate() -> None:
    estimate = TokenEstimator()
    messages = [{"role": "user", "content": "hello " * n} for n in range(5)]
    assert estimate(messages) == 1 + sum(map(estimate_tokens, messages))
    messages.append({"role": "assistant", "content": "ok"})
    assert estimate(messages) == 1 + sum(map(estimate_tokens, messages))
