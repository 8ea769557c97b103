"""Behavioural tests of chipwatch.classify on short articles written for these tests."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from chipwatch.classify import (
    HashingEmbedder,
    add_document,
    fit,
    load_corpus,
    load_or_fit,
    load_scope,
    load_topics,
    run_classify,
    suggest_topics,
)
from chipwatch.classify.model import FittedClassifier
from chipwatch.errors import ClassifierError, ConfigError
from chipwatch.types import ClassifyInput, Label

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ROOT / "config" / "topics.toml"
CORPUS = ROOT / "config" / "corpus"
TOPIC_IDS = {
    "ai-chip-licensing",
    "rare-earths-leverage",
    "security-debate",
    "chipmaker-stakes",
    "china-response",
}

# Our own short sample articles (not copied from anywhere).
LICENSING_EN = ClassifyInput(
    id="lic-en",
    title="US grants Nvidia licences to resume H20 sales to China",
    text=(
        "The Commerce Department has approved export licences that allow Nvidia to sell "
        "its H20 AI chips to Chinese customers again, reversing an April ban.\n\n"
        "Under the deal, the chipmaker will hand 15% of its China chip sales revenue to the "
        "US government, officials said."
    ),
)
TRADE_OFF_EN = ClassifyInput(
    id="trade-en",
    title="Chip export curbs eased as Beijing loosens rare earth restrictions",
    text=(
        "Washington agreed to lift the ban on H20 chip sales to China as part of a trade "
        "truce, officials said, after export licences had been frozen since spring.\n\n"
        "In exchange, Beijing will resume exports of rare earths and permanent magnets, "
        "whose export restrictions had hit carmakers; negotiators called the minerals "
        "its main leverage."
    ),
)
NOVEL_EN = ClassifyInput(
    id="asml-en",
    title="Dutch government widens export controls on ASML lithography machines",
    text=(
        "The Netherlands will require export licences for more of ASML's deep ultraviolet "
        "lithography systems shipped to China, the government said on Friday.\n\n"
        "The new rule follows talks with Washington and covers servicing of machines "
        "already installed at Chinese chip factories."
    ),
)
FRENCH = ClassifyInput(
    id="lic-fr",
    title="Washington autorise de nouveau l'exportation des puces Nvidia H20 vers la Chine",
    text=(
        "Le département du Commerce a accordé des licences d'exportation à Nvidia, qui "
        "pourra vendre ses puces IA H20 en Chine malgré les restrictions imposées en avril."
    ),
)
GERMAN = ClassifyInput(
    id="lic-de",
    title="USA erteilen Nvidia Exportlizenz für KI-Chips nach China",
    text=(
        "Das US-Handelsministerium hat die Genehmigung für den Export der H20-Chips erteilt. "
        "Der Exportstopp aus dem April ist damit aufgehoben."
    ),
)
OFF_WEATHER = ClassifyInput(
    id="weather",
    title="Storm warning for the Atlantic coast this weekend",
    text="Forecasters expect gusts of up to 120 km/h and heavy rain on Saturday night.",
)
OFF_PRODUCT = ClassifyInput(
    id="gpu-launch",
    title="Nvidia unveils a faster graphics card for gamers",
    text=(
        "The new GPU doubles ray-tracing performance and goes on sale next month at a "
        "price of 999 dollars, the company said at its keynote."
    ),
)


@pytest.fixture(scope="module")
def classifier() -> FittedClassifier:
    topics = load_topics(TOPICS)
    corpus = load_corpus(CORPUS, [t.id for t in topics])
    # The hashing embedder keeps the suite fast; decisions do not depend on the embedder.
    return fit(corpus, topics, load_scope(TOPICS), [], embedder=HashingEmbedder())


def one(classifier: FittedClassifier, item: ClassifyInput):  # type: ignore[no-untyped-def]
    return classifier.classify([item])[0]


# ---------- configuration ----------
def test_topics_toml_loads_the_five_taxonomy_topics() -> None:
    topics = load_topics(TOPICS)
    assert {t.id for t in topics} == TOPIC_IDS
    for topic in topics:
        assert topic.name and topic.description
        assert {"en", "fr", "de", "it", "es"} <= set(topic.terms)
    scope = load_scope(TOPICS)
    assert {"en", "fr", "de", "it", "es"} <= set(scope.goods)


def test_corpus_loads_with_known_topics() -> None:
    corpus = load_corpus(CORPUS, TOPIC_IDS)
    assert len(corpus) == 5
    assert all(set(d.topics) <= TOPIC_IDS and d.text for d in corpus)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_topic_without_id_names_file_and_field(tmp_path: Path) -> None:
    bad = TOPICS.read_text(encoding="utf-8").replace('id = "security-debate"', "", 1)
    path = _write(tmp_path / "topics.toml", bad)
    with pytest.raises(ConfigError) as info:
        load_topics(path)
    assert info.value.source == str(path)
    assert info.value.field == "topic[2].id"


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "topics.toml", "[[topic]\nid = ")
    with pytest.raises(ConfigError) as info:
        load_topics(path)
    assert str(path) in str(info.value)


def test_corpus_with_unknown_topic_names_the_field(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", "Some text.")
    _write(
        tmp_path / "corpus.toml",
        '[[document]]\nid = "a"\nfile = "a.txt"\nlanguage = "en"\n'
        'topics = ["ai-chip-licensing", "quantum-sanctions"]\n',
    )
    with pytest.raises(ConfigError) as info:
        load_corpus(tmp_path, TOPIC_IDS)
    assert info.value.field == "document[0].topics[1]"
    assert info.value.source.endswith("corpus.toml")


def test_corpus_missing_field(tmp_path: Path) -> None:
    _write(tmp_path / "corpus.toml", '[[document]]\nid = "a"\nlanguage = "en"\ntopics = []\n')
    with pytest.raises(ConfigError) as info:
        load_corpus(tmp_path, TOPIC_IDS)
    assert info.value.field == "document[0].file"


# ---------- decisions ----------
@pytest.mark.parametrize("item", [LICENSING_EN, FRENCH, GERMAN, TRADE_OFF_EN])
def test_on_subject_articles_are_relevant(
    classifier: FittedClassifier, item: ClassifyInput
) -> None:
    result = one(classifier, item)
    assert result.relevant and result.relevance > 0.5
    assert "ai-chip-licensing" in result.topics


@pytest.mark.parametrize("item", [OFF_WEATHER, OFF_PRODUCT])
def test_off_subject_articles_are_rejected(
    classifier: FittedClassifier, item: ClassifyInput
) -> None:
    result = one(classifier, item)
    assert not result.relevant and result.relevance < 0.2
    assert not result.topics and not result.novel


def test_gate_rejects_articles_without_any_scope_term(classifier: FittedClassifier) -> None:
    result = one(classifier, OFF_WEATHER)
    assert result.evidence.matched_terms == {}
    assert result.relevance < 0.1


def test_multi_label(classifier: FittedClassifier) -> None:
    result = one(classifier, TRADE_OFF_EN)
    assert {"ai-chip-licensing", "rare-earths-leverage"} <= set(result.topics)


def test_lithography_story_is_novel(classifier: FittedClassifier) -> None:
    result = one(classifier, NOVEL_EN)
    assert result.relevant and result.novel and result.topics == ()
    assert "Novel" in result.evidence.summary


# ---------- general forms of past failures (our own words) ----------
# Chinese guidance against a US-licensed chip: in scope although no US control word
# appears, since Beijing's guidance to its firms is a reaction to the controls.
CHINA_GUIDANCE_DE = ClassifyInput(
    id="guidance-de",
    title="Chinesische Behörden raten Konzernen vom Kauf von Nvidia-Beschleunigern ab",
    text=(
        "Die chinesischen Behörden haben großen Technologiekonzernen abgeraten, weitere "
        "KI-Beschleuniger von Nvidia zu bestellen, obwohl Washington den Verkauf erlaubt.\n\n"
        "Stattdessen sollen die Rechenzentren auf heimische Alternativen wie die "
        "Ascend-Prozessoren von Huawei umsteigen, heißt es aus Branchenkreisen."
    ),
)
# Chipmaking-equipment controls by an ally: relevant, but no corpus topic (a licence for
# machines is not the licensing of AI accelerators).
JAPAN_EQUIPMENT_EN = ClassifyInput(
    id="japan-tools-en",
    title="Japan adds chipmaking tools to its export licence list",
    text=(
        "Tokyo will require an export licence for more semiconductor manufacturing "
        "equipment, including etching and deposition machines, shipped to China.\n\n"
        "Tokyo Electron said the new export controls, aligned with rules in the United "
        "States and the Netherlands, would trim its sales of wafer-processing tools."
    ),
)
# Licences for rare-earth magnets: rare-earths-leverage, not AI-chip licensing.
MAGNET_LICENCES_ES = ClassifyInput(
    id="magnets-es",
    title="China exige licencias para exportar imanes de tierras raras",
    text=(
        "El Ministerio de Comercio chino exigirá una licencia de exportación para cada envío "
        "de imanes permanentes y de varias tierras raras.\n\n"
        "En Washington, los negociadores ven la medida como una palanca: Pekín quiere que "
        "Estados Unidos suavice sus controles a la exportación de chips a cambio."
    ),
)


# A domestic chip subsidy: the Commerce Department and "national security" are named, but
# nothing controls cross-border trade (they are actors and reasons, not control words).
DOMESTIC_SUBSIDIES = [
    ClassifyInput(
        id="subsidy-en",
        title="Chipmaker wins federal grant for a new Arizona plant",
        text=(
            "The Commerce Department will give the company 2 billion dollars under the "
            "CHIPS Act to build a factory near Phoenix, officials said on Thursday.\n\n"
            "The secretary said domestic production of semiconductors was a matter of "
            "national security and would bring 3,000 jobs to the state."
        ),
    ),
    ClassifyInput(
        id="subsidy-fr",
        title="Une subvention fédérale pour une nouvelle usine de puces en Arizona",
        text=(
            "Le département du Commerce versera 2 milliards de dollars au fabricant au titre "
            "du CHIPS Act pour construire une usine près de Phoenix.\n\nSelon le secrétaire "
            "au Commerce, produire des semi-conducteurs sur le sol américain relève de la "
            "sécurité nationale."
        ),
    ),
    ClassifyInput(
        id="subsidy-de",
        title="Bund fördert neue Chipfabrik in Sachsen",
        text=(
            "Das Wirtschaftsministerium unterstützt den Bau einer Halbleiterfabrik in Dresden "
            "mit fünf Milliarden Euro.\n\nDie Regierung spricht von einer Frage der "
            "nationalen Sicherheit und der technologischen Souveränität Europas."
        ),
    ),
]
# The same actors deciding on a licence: relevant.
LICENCE_BY_COMMERCE_FR = ClassifyInput(
    id="licence-fr",
    title="Washington autorise de nouveau les ventes de puces H20 en Chine",
    text=(
        "Le département du Commerce a accordé des licences à Nvidia pour vendre ses puces H20 "
        "à des clients chinois.\n\nDes experts en sécurité nationale contestent la décision."
    ),
)


@pytest.mark.parametrize("item", DOMESTIC_SUBSIDIES, ids=lambda item: item.id)
def test_a_domestic_chip_subsidy_is_not_an_export_control(
    classifier: FittedClassifier, item: ClassifyInput
) -> None:
    result = one(classifier, item)
    assert not result.relevant and not result.novel, result.relevance


def test_a_licence_decided_by_the_same_actors_is_relevant(classifier: FittedClassifier) -> None:
    result = one(classifier, LICENCE_BY_COMMERCE_FR)
    assert result.relevant and "ai-chip-licensing" in result.topics


def test_chinese_guidance_on_a_us_chip_is_relevant(classifier: FittedClassifier) -> None:
    result = one(classifier, CHINA_GUIDANCE_DE)
    assert result.relevant and "china-response" in result.topics
    assert "ai-chip-licensing" not in result.topics


def test_allied_equipment_controls_are_novel(classifier: FittedClassifier) -> None:
    result = one(classifier, JAPAN_EQUIPMENT_EN)
    assert result.relevant and result.novel and result.topics == ()
    # The licence words are found, but do not count without an AI accelerator named.
    assert "ai-chip-licensing" not in result.evidence.matched_terms


def test_licence_for_magnets_is_not_ai_chip_licensing(classifier: FittedClassifier) -> None:
    result = one(classifier, MAGNET_LICENCES_ES)
    assert result.relevant and "rare-earths-leverage" in result.topics
    assert "ai-chip-licensing" not in result.topics


def test_topic_anchors_load_and_bad_anchors_name_the_field(tmp_path: Path) -> None:
    scope = load_scope(TOPICS)
    assert "Nvidia" in scope.anchors["ai-chip-licensing"]["any"]
    bad = tmp_path / "topics.toml"
    bad.write_text(
        '[scope]\ndescription = "d"\n[scope.goods]\nen = ["chip*"]\n'
        '[[topic]]\nid = "t"\nname = "T"\ndescription = "d"\n'
        '[topic.terms]\nen = ["licence"]\n[topic.anchors]\nen = 3\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_scope(bad)
    assert info.value.field == "topic[0].anchors.en"


def test_novel_examples_must_be_a_list_of_strings(tmp_path: Path) -> None:
    bad = tmp_path / "topics.toml"
    bad.write_text(
        '[scope]\ndescription = "d"\nnovel_examples = "Entity List"\n'
        '[scope.goods]\nen = ["chip*"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_scope(bad)
    assert info.value.field == "scope.novel_examples"
    assert load_scope(TOPICS).novel_examples  # the shipped ones load


def test_headline_repeated_in_the_text_counts_once(classifier: FittedClassifier) -> None:
    doubled = ClassifyInput(
        id="doubled", title=LICENSING_EN.title, text=f"{LICENSING_EN.title}\n\n{LICENSING_EN.text}"
    )
    m = classifier.matcher.article(doubled.title, doubled.text, "en")
    assert len(m.body) == len(
        classifier.matcher.article(LICENSING_EN.title, LICENSING_EN.text, "en").body
    )


def test_evidence_is_present(classifier: FittedClassifier) -> None:
    result = one(classifier, LICENSING_EN)
    evidence = result.evidence
    assert "H20" in evidence.matched_terms["ai-chip-licensing"]
    assert evidence.matched_terms["scope"]
    corpus_ids = {d.id for d in load_corpus(CORPUS)}
    assert evidence.passages and evidence.passages[0].doc_id in corpus_ids
    assert evidence.summary.startswith("Relevant")


def test_language_detected_or_respected(classifier: FittedClassifier) -> None:
    assert one(classifier, FRENCH).language == "fr"
    assert one(classifier, GERMAN).language == "de"
    given = ClassifyInput(id="x", title=GERMAN.title, text=GERMAN.text, language="de")
    assert one(classifier, given).language == "de"


def test_label_overrides_the_same_story(classifier: FittedClassifier) -> None:
    topics = load_topics(TOPICS)
    label = Label(
        article_id="g",
        title=OFF_PRODUCT.title,
        text=OFF_PRODUCT.text,
        relevant=True,
        topics=("chipmaker-stakes",),
    )
    labelled = fit(
        load_corpus(CORPUS), topics, load_scope(TOPICS), [label], embedder=HashingEmbedder()
    )
    result = one(labelled, OFF_PRODUCT)
    assert result.relevant and result.topics == ("chipmaker-stakes",)


def test_a_label_with_a_topic_no_longer_defined_still_fits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A topic taken out of the user's file while a label carries it refused the fit, so
    every poll stopped (exit 2) and no command could undo it: the label keeps its
    verdict and its other topics, with a warning naming it."""
    topics = load_topics(TOPICS)
    label = Label(
        article_id="17",
        title=OFF_PRODUCT.title,
        text=OFF_PRODUCT.text,
        relevant=True,
        topics=("entity-list", "chipmaker-stakes"),
    )
    with caplog.at_level("WARNING", logger="chipwatch"):
        labelled = fit(
            load_corpus(CORPUS), topics, load_scope(TOPICS), [label], embedder=HashingEmbedder()
        )
    result = one(labelled, OFF_PRODUCT)
    assert result.relevant and result.topics == ("chipmaker-stakes",)
    assert "label 17: topics entity-list are not defined any more" in caplog.text


# ---------- cache ----------
def test_cache_refits_when_corpus_changes(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    cache = tmp_path / "cache"
    first = load_or_fit(corpus, TOPICS, [], cache, embedder=HashingEmbedder(), warm=False)
    files = sorted(cache.glob("*.pkl"))
    assert len(files) == 1
    again = load_or_fit(corpus, TOPICS, [], cache, embedder=HashingEmbedder(), warm=False)
    assert sorted(cache.glob("*.pkl")) == files
    assert len(again.passages) == len(first.passages)
    add_document(
        corpus,
        "Les Pays-Bas restreignent l'export des machines de lithographie.\n\n"
        "ASML devra demander une licence pour ses ventes en Chine.",
        ["ai-chip-licensing"],
        language="fr",
        known_topics=TOPIC_IDS,
    )
    refit = load_or_fit(corpus, TOPICS, [], cache, embedder=HashingEmbedder(), warm=False)
    assert sorted(cache.glob("*.pkl")) != files
    assert len(refit.passages) > len(first.passages)
    assert len(load_corpus(corpus, TOPIC_IDS)) == 6


# A corpus document in our own words, and a lightly edited copy as a feed would carry it
# (other headline, a few words changed, the closing sentence dropped).
SMUGGLING_DOC = (
    "Singapore court hears how a trading firm routed Nvidia servers to China\n\n"
    "Prosecutors told the court that the trading firm bought servers fitted with Nvidia "
    "accelerators from distributors in Malaysia and Singapore, relabelled the crates as "
    "network switches and shipped them on to data centres in Shenzhen.\n\n"
    "The defendants deny any wrongdoing. Their lawyers argue the buyers declared a "
    "Singapore end user and that the firm could not have known where the machines ended "
    "up, because the paperwork was in order at every step.\n\n"
    "Analysts say the case shows how hard it is to police where chips go once they leave "
    "the factory: the servers changed hands four times in three countries within two months "
    "and the invoices never named the final customer.\n\n"
    "Nvidia said it requires its partners to comply with the law and would take action "
    "against any that did not."
)
SMUGGLING_COPY = ClassifyInput(
    id="smuggling-copy",
    title="Trading firm accused of routing Nvidia servers to China, court hears",
    text=(
        "Prosecutors told a Singapore court that the trading firm bought servers fitted with "
        "Nvidia accelerators from distributors in Malaysia and Singapore, relabelled the "
        "crates as network switches and shipped them on to data centres in Shenzhen.\n\n"
        "The defendants deny wrongdoing. Their lawyers argue the buyers declared a Singapore "
        "end user and that the firm could not have known where the machines ended up, "
        "because the paperwork was in order at every step.\n\n"
        "Analysts say the case shows how hard it is to police where chips go once they leave "
        "the factory: the servers changed hands four times in three countries within two "
        "months and the invoices never named the final customer."
    ),
)


def _corpus_copy(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    return corpus


def test_near_copy_of_a_corpus_document_inherits_its_topics(tmp_path: Path) -> None:
    corpus = _corpus_copy(tmp_path)
    cache = tmp_path / "cache"
    before = load_or_fit(corpus, TOPICS, [], cache, embedder=HashingEmbedder(), warm=False)
    lexical = one(before, SMUGGLING_COPY)
    # The user files the story under the topics they judge it carries.
    doc = add_document(
        corpus,
        SMUGGLING_DOC,
        ["security-debate", "china-response"],
        language="en",
        known_topics=TOPIC_IDS,
    )
    after = load_or_fit(corpus, TOPICS, [], cache, embedder=HashingEmbedder(), warm=False)
    result = one(after, SMUGGLING_COPY)
    assert result.relevant
    assert set(result.topics) == {"security-debate", "china-response"}
    assert set(result.topics) != set(lexical.topics)  # the corpus changed the decision
    assert doc.id in result.evidence.summary
    # A different story is decided as before: only copies inherit.
    assert one(after, LICENSING_EN).topics == one(before, LICENSING_EN).topics


def test_a_user_label_wins_over_a_corpus_document(tmp_path: Path) -> None:
    corpus = _corpus_copy(tmp_path)
    add_document(corpus, SMUGGLING_DOC, ["china-response"], language="en", known_topics=TOPIC_IDS)
    label = Label(
        article_id="s",
        title=SMUGGLING_COPY.title,
        text=SMUGGLING_COPY.text,
        relevant=True,
        topics=("security-debate",),
    )
    model = load_or_fit(
        corpus, TOPICS, [label], tmp_path / "cache", embedder=HashingEmbedder(), warm=False
    )
    result = one(model, SMUGGLING_COPY)
    assert result.topics == ("security-debate",)
    assert result.evidence.summary.startswith("Labelled by you")


def test_near_copy_of_an_off_subject_corpus_document_is_not_relevant(tmp_path: Path) -> None:
    corpus = _corpus_copy(tmp_path)
    add_document(corpus, SMUGGLING_DOC, [], language="en", known_topics=TOPIC_IDS, relevant=False)
    model = load_or_fit(
        corpus, TOPICS, [], tmp_path / "cache", embedder=HashingEmbedder(), warm=False
    )
    result = one(model, SMUGGLING_COPY)
    assert not result.relevant and not result.topics and not result.novel


def test_copy_of_a_corpus_document_the_gate_would_reject_still_inherits(
    tmp_path: Path,
) -> None:
    # No goods term at all (no chip, no mineral): the gate alone would drop the copy.
    doc = (
        "Lawmakers want remote access to rented computing power covered by the rules\n\n"
        "A group of senators asked the Commerce Department to close what they call a "
        "loophole: firms barred from buying the hardware can still rent it by the hour from "
        "cloud providers abroad.\n\n"
        "The letter asks for a reply within thirty days and for the names of the providers "
        "the department has already contacted about the practice."
    )
    corpus = _corpus_copy(tmp_path)
    add_document(corpus, doc, ["security-debate"], language="en", known_topics=TOPIC_IDS)
    model = load_or_fit(
        corpus, TOPICS, [], tmp_path / "cache", embedder=HashingEmbedder(), warm=False
    )
    title, _, body = doc.partition("\n\n")
    copy = ClassifyInput(id="cloud", title=title, text=body.replace("thirty", "30"))
    assert not model.matcher.passes_gate(copy.title, copy.text)
    result = one(model, copy)
    assert result.relevant and result.topics == ("security-debate",)


def test_add_document_rejects_unknown_topic(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    with pytest.raises(ConfigError):
        add_document(corpus, "Some text about chips.", ["nope"], known_topics=TOPIC_IDS)


# ---------- JSONL ----------
def test_classify_jsonl_round_trip(classifier: FittedClassifier, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        {
            "id": LICENSING_EN.id,
            "title": LICENSING_EN.title,
            "text": LICENSING_EN.text,
            "url": "https://example.org/a",
            "published": "2025-08-01",
        },
        {
            "id": OFF_WEATHER.id,
            "title": OFF_WEATHER.title,
            "text": OFF_WEATHER.text,
            "language": "en",
        },
    ]
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with out.open("w", encoding="utf-8") as handle:
        assert run_classify(source, handle, classifier) == 2
    results = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    keys = {
        "id",
        "relevant",
        "relevance",
        "topics",
        "topic_scores",
        "novel",
        "language",
        "evidence",
    }
    assert all(set(r) == keys for r in results)
    assert [r["id"] for r in results] == ["lic-en", "weather"]
    assert results[0]["relevant"] and not results[1]["relevant"]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"id": "b", "title": "t"', "invalid JSON"),
        ('{"id": "b", "title": "t"}', "missing field 'text'"),
    ],
)
def test_malformed_line_names_the_line(
    classifier: FittedClassifier, tmp_path: Path, bad_line: str, message: str
) -> None:
    source = tmp_path / "in.jsonl"
    good = json.dumps({"id": "a", "title": "t", "text": "x"})
    source.write_text(f"{good}\n{bad_line}\n", encoding="utf-8")
    out = io.StringIO()
    with pytest.raises(ClassifierError, match=rf"in\.jsonl:2: {message}"):
        run_classify(source, out, classifier)
    assert out.getvalue() == ""  # nothing written before the whole input is read


# ---------- suggestions ----------
def test_suggest_topics_groups_novel_articles() -> None:
    smuggling = [
        ClassifyInput(
            id=f"s{i}",
            title=f"Smuggling ring charged over {n} Nvidia GPUs",
            text="Prosecutors say the smuggling ring shipped GPUs to China through "
            "shell companies in Singapore; the smuggling defendants face charges.",
        )
        for i, n in enumerate(("300", "500", "1,200"))
    ]
    litho = [
        ClassifyInput(
            id=f"l{i}",
            title=f"Dutch lithography export rules tightened ({y})",
            text="ASML lithography machines now need a Dutch export licence; "
            "lithography servicing in China is restricted too.",
        )
        for i, y in enumerate(("May", "June"))
    ]
    suggestions = suggest_topics(smuggling + litho, k=2, embedder=HashingEmbedder())
    assert [s.size for s in suggestions] == [3, 2]
    assert set(suggestions[0].member_ids) == {"s0", "s1", "s2"}
    assert any("smuggling" in t for t in suggestions[0].label_terms)
    assert any("lithography" in t for t in suggestions[1].label_terms)
