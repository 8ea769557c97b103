"""The review site's links in a digest: per item "not relevant" and "wrong topic", and the
`List-Unsubscribe` headers (RFC 2369, one-click POST of RFC 8058). Each link is signed
for its recipient and article (chipwatch.web.signing) and expires after
[web].link_ttl_days; it opens a confirmation page, and only its POST changes anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chipwatch.settings import Settings
from chipwatch.web.signing import NOT_RELEVANT, UNSUBSCRIBE, WRONG_TOPIC, sign, site_secret


@dataclass(frozen=True)
class DigestLinks:
    base_url: str
    secret: bytes
    recipient: str
    now: datetime
    ttl: timedelta

    def _url(self, prefix: str, action: str, article_id: int) -> str:
        token = sign(self.secret, action, self.recipient, article_id, self.now, self.ttl)
        return f"{self.base_url}/{prefix}/{token}"

    def for_article(self, article_id: int) -> dict[str, str]:
        return {
            "not_relevant": self._url("d", NOT_RELEVANT, article_id),
            "wrong_topic": self._url("d", WRONG_TOPIC, article_id),
        }

    def unsubscribe_url(self) -> str:
        return self._url("u", UNSUBSCRIBE, 0)

    def headers(self) -> dict[str, str]:
        return {
            "List-Unsubscribe": f"<{self.unsubscribe_url()}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }


def links_for(settings: Settings, recipient: str, now: datetime) -> DigestLinks:
    return DigestLinks(
        base_url=settings.web.public_url.rstrip("/"),
        secret=site_secret(settings.data_dir),
        recipient=recipient,
        now=now,
        ttl=timedelta(days=settings.web.link_ttl_days),
    )
