"""The stored backlog is classified in batches, every article once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chipwatch import pipeline
from chipwatch.classify import load_corpus
from chipwatch.demo.server import serve_demo_feeds
from chipwatch.settings import SourceConfig, load_settings, with_overrides
from chipwatch.store.models import ArticleRow, ClassificationRow

REPO = Path(__file__).resolve().parents[1]


def test_backlog_is_classified_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text(
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n',
        encoding="utf-8",
    )
    environ = {"CHIPWATCH_DATABASE_URL": database_url} if database_url else {}
    settings = load_settings(config, data_dir=tmp_path / "data", environ=environ)
    with serve_demo_feeds(load_corpus(settings.corpus_dir)) as (_, urls):
        settings = with_overrides(
            replace(settings, sources=tuple(SourceConfig(url) for url in urls)),
            fetch={"allow_private_networks": True},
        )
        polled = pipeline.poll_and_classify(settings, all_feeds=True, classify=False)
    assert polled.classified is None and polled.new_articles == 16

    monkeypatch.setattr(pipeline, "CLASSIFY_BATCH", 3)  # 16 articles: six batches
    report = pipeline.classify_backlog(settings, pipeline.open_sessions(settings))
    assert report.classified == 16
    assert 0 < report.relevant < 16
    with pipeline.open_sessions(settings)() as session:
        assert session.scalar(select(func.count()).select_from(ClassificationRow)) == 16
        assert session.scalar(select(func.count()).select_from(ArticleRow)) == 16
    again = pipeline.classify_backlog(settings, pipeline.open_sessions(settings))
    assert again.classified == 0
