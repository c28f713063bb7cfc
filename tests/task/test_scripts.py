"""Scripts of text and words as readers count them: the ground of the foreign-script check and ``maxWords``."""

from __future__ import annotations

import re

from enrichkit.task.schema import first_error, make_validator
from enrichkit.task.scripts import foreign, scripts, word_class, word_count


def test_the_scripts_of_text_are_those_of_its_letters() -> None:
    assert scripts("Sound is crisp, 10/10!") == {"LATIN"}
    assert scripts("12 / 34 -- €5") == set()  # no letters, no script
    assert scripts("with a电池lasting~2days.") == {"LATIN", "HAN"}
    assert scripts("Привет, Ωμέγα, こんにちは, 안녕") == {"CYRILLIC", "GREEK", "HAN", "HANGUL"}
    assert scripts("Crème brûlée, Łódź") == {"LATIN"}


def test_foreign_names_the_scripts_outside_those_allowed() -> None:
    assert foreign("…and客服's响应无回应.", {"LATIN"}) == ["HAN"]
    assert foreign("A café in Москва", {"LATIN", "CYRILLIC"}) == []
    assert foreign("“Smart” quotes — dashes, 50 % and ½", {"LATIN"}) == []


def test_chinese_and_japanese_are_counted_a_word_a_character() -> None:
    assert word_count("setup is quick") == 3
    assert word_count("with a电池lasting~2days.") == 5  # with, a, 电, 池, lasting~2days.
    assert word_count("我喜欢 Python。") == 4
    assert word_count("한국어 문장 입니다") == 3  # Korean puts spaces between words


def test_max_words_counts_the_characters_of_chinese_text() -> None:
    validator = make_validator({"type": "object", "properties": {"t": {"type": "string", "maxWords": 3}}})
    assert first_error(validator, {"t": "电池很好"}) is not None  # one "word" to str.split, four to a reader
    assert first_error(validator, {"t": "电池好"}) is None


def test_a_word_class_holds_its_scripts_letters_and_no_json_syntax() -> None:
    latin = re.compile(f"[{word_class({'LATIN'})}]+")
    assert latin.fullmatch("Ünïcode-ready,") is None  # the comma ends a word, it is not in one
    assert all(latin.fullmatch(w) for w in ["Ünïcode-ready", "10/10", "“quoted”", "it's", "€5"])
    assert not any(latin.fullmatch(w) for w in ["电池", "Python.org.}", "a[0]", "back\\slash", "two words"])
