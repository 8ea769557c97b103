"""Topics defined by examples, short inputs, any language, and the classifier's input bugs.

Sample articles are our own words, written for these tests.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from chipwatch.classify import load_or_fit
from chipwatch.classify.model import FittedClassifier
from chipwatch.classify.text import split_units
from chipwatch.types import UNDETERMINED, UNSURE_BELOW, ClassifyInput, TextKind
from tests.chipwatch_cli import run_chipwatch

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ROOT / "config" / "topics.toml"
CORPUS = ROOT / "config" / "corpus"

LICENSING = ClassifyInput(
    id="lic",
    title="US grants Nvidia licences to resume H20 sales to China",
    text=(
        "The Commerce Department has approved export licences that allow Nvidia to sell "
        "its H20 AI chips to Chinese customers again, reversing an April ban.\n\n"
        "Under the deal, the chipmaker will hand 15% of its China chip sales revenue to the "
        "US government, officials said.\n\n"
        "Lawmakers in Congress warned that the accelerators could help the Chinese military."
    ),
)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> FittedClassifier:
    return load_or_fit(CORPUS, TOPICS, [], tmp_path_factory.mktemp("cache"))


def one(model: FittedClassifier, item: ClassifyInput):  # type: ignore[no-untyped-def]
    return model.classify([item])[0]


# --- short inputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "US bans exports of Nvidia H20 AI chips to China",
        "Washington tightens export controls on advanced chips for Chinese buyers",
        "Les États-Unis interdisent l'exportation des puces Nvidia vers la Chine",
    ],
)
def test_a_headline_naming_an_export_control_on_chips_is_relevant_alone(
    classifier: FittedClassifier, title: str
) -> None:
    result = one(classifier, ClassifyInput(id="h", title=title, text=""))
    assert result.relevant, result.evidence.summary


def test_an_off_subject_chip_headline_stays_off_subject(classifier: FittedClassifier) -> None:
    result = one(
        classifier, ClassifyInput(id="h", title="Nvidia unveils a new gaming card", text="")
    )
    assert not result.relevant


def test_the_text_kind_is_guessed_from_length_or_taken_from_the_input(
    classifier: FittedClassifier,
) -> None:
    assert TextKind.guess(LICENSING.title, "") is TextKind.HEADLINE
    assert TextKind.guess(LICENSING.title, LICENSING.text[:300]) is TextKind.SUMMARY
    # The kind picks the weights: the same input scored as a headline and as a full
    # article gives two different calibrated probabilities.
    head = one(classifier, replace(LICENSING, text="", text_kind=TextKind.HEADLINE))
    full = one(classifier, replace(LICENSING, text="", text_kind=TextKind.FULL))
    assert head.relevant
    assert head.relevance != full.relevance


def test_the_first_300_characters_keep_the_verdict(classifier: FittedClassifier) -> None:
    short = one(classifier, replace(LICENSING, text=LICENSING.text[:300]))
    assert short.relevant
    assert "ai-chip-licensing" in short.topics


# --- any language ------------------------------------------------------------------------

UNSEEN = [
    (
        "zh",
        "美国收紧对华人工智能芯片出口管制",
        "美国商务部宣布，英伟达向中国出口先进人工智能芯片需要获得许可证。",
        "北京明天天气晴朗",
        "气温将升至二十五度，适合户外活动。",
    ),
    (
        "ja",
        "米国、中国向け半導体の輸出規制を強化",
        "米商務省は、エヌビディアのAI半導体を中国に輸出する際に許可を求めると発表した。",
        "東京で桜が満開に",
        "週末は多くの花見客でにぎわう見込みだ。",
    ),
    (
        "ru",
        "США ужесточили экспортный контроль на чипы для Китая",
        "Министерство торговли США запретило продажу ИИ-ускорителей Nvidia в Китай без "
        "лицензии. Ограничения на экспорт полупроводников вводятся ради национальной "
        "безопасности.",
        "В Москве открылся новый парк",
        "Жители города смогут гулять среди деревьев.",
    ),
]


@pytest.mark.parametrize(("lang", "title", "text", "off_title", "off_text"), UNSEEN)
def test_languages_without_term_lists_are_judged_by_meaning(
    classifier: FittedClassifier, lang: str, title: str, text: str, off_title: str, off_text: str
) -> None:
    on = one(classifier, ClassifyInput(id="on", title=title, text=text))
    off = one(classifier, ClassifyInput(id="off", title=off_title, text=off_text))
    assert on.language == lang
    assert on.relevance > off.relevance + 0.2
    assert not off.relevant
    if lang != "ru":  # Russian is the weakest: see docs/classifier.md
        assert on.relevant, on.evidence.summary


RARE_EARTHS_ZH = ClassifyInput(
    id="re-zh",
    title="中国对稀土磁体实行出口许可证管理",
    text="商务部宣布，出口稀土永磁体须申领许可证，此举被视为对美国芯片出口管制的回应。",
)
LICENSING_RU = ClassifyInput(
    id="lic-ru",
    title="США выдали Nvidia лицензии на продажу чипов H20 в Китай",
    text="Министерство торговли США разрешило Nvidia возобновить поставки ускорителей H20 "
    "китайским клиентам после апрельского запрета.",
)


def test_an_article_in_a_language_without_term_lists_gets_its_topic(
    classifier: FittedClassifier,
) -> None:
    # The lexical topic model would see only zeros there: the semantic-only one judges.
    zh, ru = classifier.classify([RARE_EARTHS_ZH, LICENSING_RU])
    assert zh.language == "zh" and "rare-earths-leverage" in zh.topics, zh.topic_scores
    assert ru.language == "ru" and "ai-chip-licensing" in ru.topics, ru.topic_scores


# Short English headlines the language identifier misreads (Dutch, Polish, Spanish,
# Swedish), each with a probability under 0.5: a news-search feed is made of such items.
MISREAD_OFF = ["Linkarzu notes", "Brakko devlog", "Moonlit Harbor"]
MISREAD_ON = ["Nvidia H20 licence", "Lutnick H20", "AMD MI308 curbs"]


@pytest.mark.parametrize("title", MISREAD_OFF + MISREAD_ON)
def test_the_identifier_is_unsure_of_these_headlines(title: str) -> None:
    from chipwatch.classify.text import _identifier

    assert _identifier().classify(title)[1] < UNSURE_BELOW  # the premise of the two below


@pytest.mark.parametrize("title", MISREAD_OFF)
def test_a_headline_of_undetermined_language_is_read_against_every_term_list(
    classifier: FittedClassifier, title: str
) -> None:
    # Judged by meaning alone, as a language without lists, such a headline was relevant
    # (the first here at 0.65; the real feeds' game names at 0.55-0.7).
    verdict = one(classifier, ClassifyInput(id="off", title=title, text=""))
    assert verdict.language == UNDETERMINED
    assert not verdict.relevant and verdict.relevance < 0.1, verdict.evidence.summary


@pytest.mark.parametrize("title", MISREAD_ON)
def test_an_on_subject_headline_of_undetermined_language_is_relevant(
    classifier: FittedClassifier, title: str
) -> None:
    verdict = one(classifier, ClassifyInput(id="on", title=title, text=""))
    assert verdict.language == UNDETERMINED
    assert verdict.relevant, verdict.evidence.summary


def test_an_undetermined_text_in_another_script_is_still_judged_by_meaning(
    classifier: FittedClassifier,
) -> None:
    from chipwatch.classify.text import judged_by_terms

    assert not judged_by_terms(UNDETERMINED, "美国收紧芯片出口管制", "")
    assert judged_by_terms(UNDETERMINED, "Moonlit Harbor", "")
    assert not judged_by_terms("pt", "Nvidia volta a vender chips", "")


def test_corpus_furniture_is_no_on_subject_reference(classifier: FittedClassifier) -> None:
    from chipwatch.classify.text import substantive

    assert not substantive("L'info en 3 points") and not substantive("Source : The Register")
    assert substantive("La sécurité nationale devient un sujet secondaire")
    assert substantive("中国对稀土磁体实行出口许可证管理")
    # "Przygoda 3" (Polish, surely: judged by meaning) was relevant at 0.87, nearest to
    # the seed corpus's "L'info en 3 points".
    verdict = one(classifier, ClassifyInput(id="pl", title="Przygoda 3", text=""))
    assert verdict.language == "pl" and not verdict.relevant, verdict.evidence.summary


# --- bugs --------------------------------------------------------------------------------


def test_the_relevance_threshold_setting_decides_the_verdict(tmp_path: Path) -> None:
    strict = load_or_fit(CORPUS, TOPICS, [], tmp_path, relevance_threshold=0.9999)
    lenient = load_or_fit(CORPUS, TOPICS, [], tmp_path, relevance_threshold=0.5)
    probe = ClassifyInput(id="p", title="Chip export rules reviewed", text="")
    assert strict.classify([probe])[0].relevance == lenient.classify([probe])[0].relevance
    assert lenient.classify([LICENSING])[0].relevant
    assert not strict.classify([LICENSING])[0].relevant


def test_markup_and_scripts_are_stripped_before_matching(classifier: FittedClassifier) -> None:
    scripted = ClassifyInput(
        id="s",
        title="Sunny weekend ahead",
        text="<script>var tags = 'export controls on Nvidia chips to China';</script>"
        "<p>The weather stays warm and dry until Monday.</p>",
    )
    result = one(classifier, scripted)
    assert result.evidence.matched_terms == {}
    assert not result.relevant
    html = replace(LICENSING, text="<div>" + LICENSING.text.replace("\n\n", "</p><p>") + "</div>")
    assert one(classifier, html).topics == one(classifier, LICENSING).topics


def test_the_same_verdict_with_or_without_line_breaks(classifier: FittedClassifier) -> None:
    flat = replace(LICENSING, id="flat", text=" ".join(LICENSING.text.split()))
    broken = replace(
        LICENSING, id="broken", text=LICENSING.text.replace(". ", ".\n").replace(", ", ",\n")
    )
    base = one(classifier, LICENSING)
    for variant in (flat, broken):
        result = one(classifier, variant)
        assert (result.relevant, result.topics) == (base.relevant, base.topics)
    assert split_units(flat.text) == split_units(LICENSING.text)


def test_a_one_megabyte_line_gets_the_verdict_of_the_same_text_with_breaks(
    classifier: FittedClassifier,
) -> None:
    paragraph = " ".join(LICENSING.text.split())
    copies = 1_000_000 // len(paragraph) + 1
    one_line = replace(LICENSING, id="line", text=" ".join([paragraph] * copies))
    with_breaks = replace(LICENSING, id="breaks", text="\n\n".join([paragraph] * copies))
    assert len(one_line.text) > 1_000_000
    a, b = classifier.classify([one_line, with_breaks])
    assert a.relevant and b.relevant
    assert a.topics == b.topics
    assert "ai-chip-licensing" in a.topics


# --- a new topic from its description and examples, through the CLI ----------------------

EXAMPLE_1 = (
    "US adds dozens of Chinese chip firms to the Entity List\n"
    "The Commerce Department placed 140 Chinese companies, including makers of chipmaking "
    "tools, on its Entity List, which bars American suppliers from shipping them goods "
    "without a licence.\n"
    "Officials said the firms helped the Chinese military obtain advanced semiconductors.\n"
)
EXAMPLE_2 = (
    "Washington blacklists more Chinese semiconductor companies\n"
    "Dozens of Chinese semiconductor groups were added to the US trade blacklist known as "
    "the Entity List, cutting them off from American technology.\n"
    "The listed companies can no longer buy US chips or software unless the government "
    "grants a licence, which it will usually deny.\n"
)
ON_TOPIC = {
    "id": "new",
    "title": "Commerce puts 25 more Chinese chip designers on the Entity List",
    "text": "The US added 25 Chinese chip design firms to its Entity List blacklist on "
    "Tuesday, so American suppliers now need a licence to sell them anything.",
}
OFF_TOPIC = {
    "id": "other",
    "title": "China tells its firms to stop buying Nvidia H20 chips",
    "text": "Beijing regulators told Chinese tech groups to halt purchases of Nvidia's H20 "
    "accelerators and to favour Huawei's Ascend chips instead.",
}


def test_a_new_topic_from_a_description_and_two_examples(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(CORPUS, config_dir / "corpus")
    config = config_dir / "chipwatch.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\ntopics = "{TOPICS}"\ncorpus_dir = "corpus"\n',
        encoding="utf-8",
    )
    shipped = TOPICS.read_bytes()

    refused = run_chipwatch(config, "corpus", "add", str(tmp_path / "x.txt"), "--topics", "nope")
    assert refused.returncode != 0

    added = run_chipwatch(
        config,
        "topics",
        "add",
        "entity-list",
        "--name",
        "Entity List additions",
        "--description",
        "The US Commerce Department adds Chinese companies to the Entity List trade "
        "blacklist, barring sales of American chips and tools to them without a licence.",
    )
    assert added.returncode == 0, added.stderr
    assert (config_dir / "user-topics.toml").exists()
    assert TOPICS.read_bytes() == shipped  # the shipped topics are never written
    assert "entity-list" in run_chipwatch(config, "topics", "list").stdout

    for number, text in enumerate((EXAMPLE_1, EXAMPLE_2)):
        path = tmp_path / f"example{number}.txt"
        path.write_text(text, encoding="utf-8")
        result = run_chipwatch(config, "corpus", "add", str(path), "--topics", "entity-list")
        assert result.returncode == 0, result.stderr

    inputs = tmp_path / "in.jsonl"
    inputs.write_text("\n".join(json.dumps(r) for r in (ON_TOPIC, OFF_TOPIC)) + "\n")
    output = tmp_path / "out.jsonl"
    result = run_chipwatch(config, "classify", "--input", str(inputs), "--output", str(output))
    assert result.returncode == 0, result.stderr
    on, off = (json.loads(line) for line in output.read_text().splitlines())
    assert on["relevant"] and "entity-list" in on["topics"], on
    assert "entity-list" in off["topic_scores"]
    # A termless topic is the least precise part (docs/classifier.md, new-topic
    # protocol): the off-topic story may still pass, but clearly lower.
    assert on["topic_scores"]["entity-list"] > off["topic_scores"]["entity-list"] + 0.1


# --- start-up ----------------------------------------------------------------------------


def test_the_built_use_model_is_cached_and_a_damaged_cache_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from chipwatch.classify.embed import USE_CACHE_PREFIX, UseEmbedder

    monkeypatch.setenv("CHIPWATCH_CACHE_DIR", str(tmp_path))
    text = ["Nvidia may sell its H20 chips to China again."]
    built = UseEmbedder().embed(text)
    cached_files = list(tmp_path.glob(f"{USE_CACHE_PREFIX}*.pkl"))
    assert len(cached_files) == 1
    assert np.array_equal(UseEmbedder().embed(text), built)
    cached_files[0].write_bytes(b"not a pickle")
    assert np.array_equal(UseEmbedder().embed(text), built)
    assert cached_files[0].stat().st_size > 1_000_000  # rebuilt


# --- news no topic covers yet ------------------------------------------------------------

ENTITY_LIST = ClassifyInput(
    id="entity-list",
    title="Dozens of Chinese chip firms put on US trade blacklist",
    text=(
        "The US Commerce Department put 30 Chinese companies, among them makers of AI chips "
        "and suppliers to Huawei, on the Entity List, which bars American firms from selling "
        "them technology without a licence.\n\nBeijing called the move an abuse of export "
        "controls."
    ),
)
SMUGGLING = ClassifyInput(
    id="smuggling",
    title="Broker admits shipping banned Nvidia AI chips to China via Thailand",
    text=(
        "A Texas electronics broker pleaded guilty to exporting Nvidia AI chips to China "
        "without the licence US export rules require, relabelling the boxes as laptop parts "
        "and sending them through a warehouse in Bangkok.\n\nHe faces up to 20 years in prison."
    ),
)


def without_novel_examples(tmp_path: Path) -> Path:
    text = TOPICS.read_text(encoding="utf-8")
    start = text.index("novel_examples = [")
    end = text.index("]\n", start) + 2
    path = tmp_path / "topics.toml"
    path.write_text(text[:start] + "novel_examples = []\n" + text[end:], encoding="utf-8")
    return path


def test_the_novel_examples_keep_news_no_topic_covers_novel(
    classifier: FittedClassifier, tmp_path: Path
) -> None:
    bare = load_or_fit(CORPUS, without_novel_examples(tmp_path), [], tmp_path / "cache")
    with_examples = classifier.classify([ENTITY_LIST, SMUGGLING, LICENSING])
    without = bare.classify([ENTITY_LIST, SMUGGLING, LICENSING])
    # An Entity List addition names AI chips, Huawei and a licence: without the examples
    # it is absorbed into the licensing topic.
    assert with_examples[0].relevant and with_examples[0].novel, with_examples[0].topic_scores
    assert without[0].topics and not without[0].novel
    licensing = "ai-chip-licensing"
    assert with_examples[1].topic_scores[licensing] < without[1].topic_scores[licensing]
    # A licence decision keeps its topic.
    assert licensing in with_examples[2].topics and licensing in without[2].topics
