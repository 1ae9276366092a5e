"""Core, recall and archival memory."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from memgpt_lab import system
from memgpt_lab.errors import LabError, MemoryLimitError, UnknownNameError
from memgpt_lab.memory import (
    ArchivalMemory,
    CoreMemory,
    RecallEntry,
    RecallMemory,
    cosine,
    tokenize,
)

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


# --- core memory -----------------------------------------------------------------------


def test_core_memory_blocks_usage_and_render() -> None:
    core = CoreMemory("I am Sam.", "Name: Ada", persona_char_limit=50, human_char_limit=20)
    assert core.persona == "I am Sam."
    assert core.human == "Name: Ada"
    assert core.usage() == {"persona": (9, 50), "human": (9, 20)}
    assert core.render() == (
        '<persona characters="9/50">\nI am Sam.\n</persona>\n'
        '<human characters="9/20">\nName: Ada\n</human>'
    )
    assert repr(core) == "CoreMemory(persona=9/50, human=9/20)"


def test_core_memory_append_adds_a_line() -> None:
    core = CoreMemory("", "")
    assert core.append("human", "Name: Ada") == 9
    assert core.append("human", "Likes tea") == len("Name: Ada\nLikes tea")
    assert core.human == "Name: Ada\nLikes tea"
    assert core.persona == ""


def test_core_memory_replace_every_occurrence_and_delete() -> None:
    core = CoreMemory("cats. cats.", "Name: Ada")
    core.replace("persona", "cats", "dogs")
    assert core.persona == "dogs. dogs."
    core.replace("human", "Name: Ada", "")
    assert core.human == ""


def test_core_memory_replace_text_not_present() -> None:
    core = CoreMemory("I am Sam.", "Name: Ada")
    with pytest.raises(ValueError, match="Content not found in human: 'Bob'"):
        core.replace("human", "Bob", "Rob")
    with pytest.raises(ValueError, match="must not be empty"):
        core.replace("human", "", "x")
    assert core.human == "Name: Ada"


def test_core_memory_unknown_section() -> None:
    core = CoreMemory()
    for edit in (
        lambda: core.append("diary", "x"),
        lambda: core.replace("diary", "a", "b"),
        lambda: core.set("diary", "x"),
    ):
        with pytest.raises(UnknownNameError) as caught:
            edit()
        assert caught.value.available == ["human", "persona"]
        assert "unknown core memory section 'diary'" in str(caught.value)


def test_core_memory_over_limit_edits_are_rejected_and_leave_the_block() -> None:
    core = CoreMemory("p" * 10, "h" * 10, persona_char_limit=12, human_char_limit=15)
    with pytest.raises(
        MemoryLimitError, match="human block would be 21 characters, over its limit of 15"
    ):
        core.append("human", "x" * 10)
    assert core.human == "h" * 10
    with pytest.raises(MemoryLimitError):
        core.replace("persona", "p", "pp")  # 20 > 12
    assert core.persona == "p" * 10
    with pytest.raises(MemoryLimitError):
        core.set("persona", "q" * 13)
    assert core.persona == "p" * 10
    # exactly at the limit is allowed
    assert core.set("persona", "q" * 12) == 12
    assert isinstance(MemoryLimitError("x"), (LabError, ValueError))


def test_core_memory_initial_text_over_limit() -> None:
    with pytest.raises(MemoryLimitError):
        CoreMemory("x" * 11, "", persona_char_limit=10)


def test_core_memory_content_must_be_text() -> None:
    with pytest.raises(TypeError, match="must be str, not int"):
        CoreMemory().set("human", 5)  # type: ignore[arg-type]


# --- recall memory -----------------------------------------------------------------------


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": system.package_user_message(text, T0)}


def said(text: str) -> dict[str, object]:
    return {
        "role": "assistant",
        "content": "thinking about cats",
        "function_call": {"name": "send_message", "arguments": json.dumps({"message": text})},
    }


def test_recall_entry_text_unpacks_user_json_and_send_message() -> None:
    assert RecallEntry(T0, user("I like tea")).text == "I like tea"
    assert RecallEntry(T0, said("Tea is nice")).text == "Tea is nice"
    plain = {"role": "user", "content": "not json"}
    assert RecallEntry(T0, plain).text == "not json"
    broken = {"role": "user", "content": "{not json"}
    assert RecallEntry(T0, broken).text == "{not json"
    heartbeat = {"role": "user", "content": system.get_heartbeat(time=T0)}
    assert RecallEntry(T0, heartbeat).text == heartbeat["content"]  # no "message" field
    thought = {"role": "assistant", "content": "hmm"}
    assert RecallEntry(T0, thought).text == "hmm"
    bad_args = {
        "role": "assistant",
        "content": "x",
        "function_call": {"name": "send_message", "arguments": "{oops"},
    }
    assert RecallEntry(T0, bad_args).text == "x"
    assert RecallEntry(T0, {"role": "function", "content": None}).text == ""


def test_recall_entry_said() -> None:
    assert RecallEntry(T0, user("hi")).said
    assert RecallEntry(T0, said("hi")).said
    assert not RecallEntry(T0, {"role": "assistant", "content": "thinking"}).said
    assert not RecallEntry(T0, {"role": "function", "content": "{}"}).said


def test_recall_text_search_case_insensitive_oldest_first() -> None:
    recall = RecallMemory()
    recall.insert(user("I adopted a CAT"), T0)
    recall.insert(said("What is the cat called?"), T0 + timedelta(minutes=1))
    recall.insert(user("I like dogs"), T0 + timedelta(minutes=2))
    recall.insert({"role": "function", "content": "cat results"}, T0 + timedelta(minutes=3))
    page = recall.text_search("cat")
    assert [e.text for e in page.items] == [
        "I adopted a CAT",
        "What is the cat called?",
        "cat results",
    ]
    assert page.total == 3
    only_said = recall.text_search("cat", said_only=True)
    assert [e.text for e in only_said.items] == ["I adopted a CAT", "What is the cat called?"]
    # the send_message text is searched, not the inner monologue ("thinking about cats")
    assert recall.text_search("thinking").total == 0
    assert recall.text_search("parrot").items == []
    assert len(recall) == 4


def test_recall_text_search_paging() -> None:
    recall = RecallMemory(page_size=2)
    for i in range(5):
        recall.insert(user(f"note {i}"), T0)
    pages = [recall.text_search("note", page=p) for p in range(4)]
    assert [[e.text for e in p.items] for p in pages] == [
        ["note 0", "note 1"],
        ["note 2", "note 3"],
        ["note 4"],
        [],
    ]
    assert {p.total for p in pages} == {5}
    assert pages[0].pages == 3
    assert recall.text_search("note", page_size=10).items[-1].text == "note 4"
    with pytest.raises(ValueError, match="page must be 0 or more"):
        recall.text_search("note", page=-1)
    with pytest.raises(ValueError, match="page_size must be 1 or more"):
        recall.text_search("note", page_size=0)
    with pytest.raises(ValueError, match="page_size must be 1 or more"):
        recall.date_search("2026-01-01", "2026-01-01", page_size=0)
    assert recall.text_search("nothing").pages == 1


def test_recall_date_search_inclusive() -> None:
    recall = RecallMemory(page_size=10)
    for day in range(1, 6):
        recall.insert(user(f"day {day}"), datetime(2026, 1, day, 23, 59, tzinfo=UTC))
    found = recall.date_search("2026-01-02", "2026-01-04")
    assert [e.text for e in found.items] == ["day 2", "day 3", "day 4"]
    same_day = recall.date_search(" 2026-01-05 ", date(2026, 1, 5))
    assert [e.text for e in same_day.items] == ["day 5"]
    as_datetimes = recall.date_search(datetime(2026, 1, 1, 12), datetime(2026, 1, 1, 13))
    assert [e.text for e in as_datetimes.items] == ["day 1"]
    assert recall.date_search("2025-01-01", "2025-12-31").total == 0
    paged = recall.date_search("2026-01-01", "2026-01-05", page=1, page_size=2)
    assert [e.text for e in paged.items] == ["day 3", "day 4"]


@pytest.mark.parametrize("bad", ["01/02/2026", "2026-13-01", "yesterday", ""])
def test_recall_date_search_bad_dates(bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        RecallMemory().date_search(bad, "2026-01-01")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        RecallMemory().date_search("2026-01-01", bad)


def test_recall_date_search_end_before_start() -> None:
    with pytest.raises(ValueError, match="end_date 2026-01-01 is before start_date 2026-01-02"):
        RecallMemory().date_search("2026-01-02", "2026-01-01")


# --- archival memory ---------------------------------------------------------------------


def test_tokenize_drops_stop_words_and_punctuation() -> None:
    assert tokenize("The CAT, and my dog's bed!") == ["cat", "dog", "s", "bed"]
    assert tokenize("what is it") == []


def test_archival_insert_ids_and_empty_passage() -> None:
    archive = ArchivalMemory()
    assert archive.insert("first", T0) == 1
    assert archive.insert("second", T0) == 2
    assert len(archive) == 2
    assert archive.passages[1].timestamp == T0
    for empty in ("", "   \n"):
        with pytest.raises(ValueError, match="must not be empty"):
            archive.insert(empty, T0)
    assert len(archive) == 2


def test_archival_ranking_is_bm25_ties_oldest_first() -> None:
    archive = ArchivalMemory(page_size=10)
    archive.insert("The user has a cat.", T0)  # 1: cat
    archive.insert("The cat is called Tom and sleeps on a red mat.", T0)  # 2: cat, tom (long)
    archive.insert("Weather was rainy.", T0)  # 3: nothing
    archive.insert("Tom the cat likes tuna.", T0)  # 4: cat, tom (short)
    archive.insert("Tom the cat likes tuna.", T0)  # 5: the same as 4: a tie
    found = archive.search("Tom the cat")
    # bm25: both words beat one, a shorter passage beats a longer one, ties go oldest first
    assert [p.id for p in found.items] == [4, 5, 2, 1]
    assert found.total == 4  # passages with no word of the query are left out
    assert archive.search("parrots").total == 0
    # the words are matched as words, whatever the case and punctuation
    assert [p.id for p in archive.search("TUNA!").items] == [4, 5]


def test_archival_words_are_unicode_and_accents_fold() -> None:
    archive = ArchivalMemory()
    archive.insert("Un café au lait, s'il vous plaît.", T0)
    archive.insert("snake_case words", T0)
    assert [p.id for p in archive.search("CAFÉ").items] == [1]
    assert [p.id for p in archive.search("cafe").items] == [1]
    assert [p.id for p in archive.search("case").items] == [2]  # "_" separates words
    assert tokenize("Un café_au lait") == ["un", "café", "au", "lait"]


def test_archival_stop_word_only_query_falls_back_to_substring() -> None:
    archive = ArchivalMemory()
    archive.insert("what is it about", T0)
    archive.insert("cats", T0)
    found = archive.search("What is it")
    assert [p.text for p in found.items] == ["what is it about"]
    assert archive.search("   ").total == 0


def test_archival_paging() -> None:
    archive = ArchivalMemory(page_size=2)
    for i in range(5):
        archive.insert(f"garden note {i}", T0)
    assert [p.id for p in archive.search("garden").items] == [1, 2]
    assert [p.id for p in archive.search("garden", page=2).items] == [5]
    assert archive.search("garden", page=3).items == []
    assert archive.search("garden", page=3).total == 5
    assert [p.id for p in archive.search("garden", page_size=5).items] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="page_size must be 1 or more"):
        archive.search("garden", page_size=0)


class CountingEmbedder:
    """Maps text to a fixed 2-d vector by keyword, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, text: str) -> Sequence[float]:
        self.calls.append(text)
        if "cat" in text:
            return (1.0, 0.1)
        if "dog" in text:
            return (0.1, 1.0)
        if "pet" in text:
            return (0.7, 0.7)
        return (0.0, 0.0)


def test_archival_search_by_embedding_cosine() -> None:
    embed = CountingEmbedder()
    archive = ArchivalMemory(embed=embed)
    archive.insert("a dog named Rex", T0)
    archive.insert("a cat named Tom", T0)
    archive.insert("the weather", T0)  # zero vector: scores 0 and is left out
    archive.insert("a pet of some kind", T0)
    assert embed.calls == [
        "a dog named Rex",
        "a cat named Tom",
        "the weather",
        "a pet of some kind",
    ]
    embed.calls.clear()
    found = archive.search("kitten cat")
    assert embed.calls == ["kitten cat"]  # once per query, not per passage
    assert [p.id for p in found.items] == [2, 4, 1]
    assert archive.passages[1].embedding == [1.0, 0.1]
    # no lexical overlap needed: "kitten" is in no passage
    assert archive.search("pet").items[0].id == 4


def test_archival_embedding_ties_oldest_first() -> None:
    archive = ArchivalMemory(embed=lambda text: (1.0, 0.0) if "a" in text else (0.0, 1.0))
    for text in ("b one", "a two", "a three", "b four"):
        archive.insert(text, T0)
    assert [p.id for p in archive.search("a").items] == [2, 3]


def test_cosine_scores_are_between_minus_one_and_one() -> None:
    assert math.isclose(cosine((3.0, 4.0), (6.0, 8.0)), 1.0)
    assert math.isclose(cosine((1.0, 0.0), (-1.0, 0.0)), -1.0)
    assert cosine((0.0, 0.0), (1.0, 1.0)) == 0.0
    archive = ArchivalMemory(embed=lambda text: (1.0, 0.0) if "a" in text else (-1.0, 0.0))
    archive.insert("a", T0)
    archive.insert("b", T0)  # opposite to the query: left out, as a score of 0 is
    assert [p.id for p in archive.search("a").items] == [1]


def test_embeddings_are_kept_exactly() -> None:
    vector = [0.1, 1 / 3, -2.5e-300, 12345.678901234567]
    archive = ArchivalMemory(embed=lambda text: vector)
    archive.insert("x", T0)
    assert archive.passages[0].embedding == vector


def test_archival_insert_many_is_one_transaction() -> None:
    archive = ArchivalMemory()
    assert archive.insert_many(["one", "two", "three"], T0) == [1, 2, 3]
    with pytest.raises(ValueError, match="must not be empty"):
        archive.insert_many(["four", " "], T0)
    assert [p.text for p in archive.passages] == ["one", "two", "three"]
    assert archive.insert_many([], T0) == []


def test_recall_insert_many_and_short_queries() -> None:
    recall = RecallMemory(page_size=10)
    recall.insert_many([user("Ok"), user("I said OK twice, ok?"), user("fine")], T0)
    assert len(recall) == 3
    # one or two characters: a scan, the same matches as the index gives longer ones
    assert [e.text for e in recall.text_search("ok").items] == ["Ok", "I said OK twice, ok?"]
    assert [e.text for e in recall.text_search("e, o").items] == ["I said OK twice, ok?"]
    assert [e.text for e in recall.text_search('"').items] == []


@pytest.mark.parametrize("needle", ["çafé", "ÇAFÉ", "ß", "İstanbul", 'say "hi"', "a*b OR c"])
def test_recall_search_matches_python_substring_semantics(needle: str) -> None:
    texts = ["Çafé crème", "straße", "İstanbul trip", 'I say "hi" to you', "a*b OR c", "none"]
    recall = RecallMemory(page_size=10)
    for text in texts:
        recall.insert(user(text), T0)
    expected = [t for t in texts if needle.lower() in t.lower()]
    assert [e.text for e in recall.text_search(needle).items] == expected
