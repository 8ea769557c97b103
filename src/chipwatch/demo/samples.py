"""Sample news items for `make demo`, written by the chipwatch authors for the demo.

Three loopback feeds are built from them: a French press feed carrying the five corpus
articles, an English wire feed mixing on-subject and off-subject items, and a French
general-news feed that is almost all off-subject. `expected` tells the demo's own check
what should reach the digest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SampleItem:
    slug: str
    title: str
    text: str
    published: str  # RFC 3339 date
    relevant: bool


ENGLISH_WIRE: tuple[SampleItem, ...] = (
    SampleItem(
        "h200-licence-review",
        "Commerce weighs H200 export licences for Chinese buyers, with a revenue share",
        "Officials at the Commerce Department are reviewing whether Nvidia may ship its H200 "
        "accelerator to approved customers in China. Under the draft terms each licence would "
        "carry a reporting clause and the US government would take a share of the revenue, as "
        "it already does for the H20. Lawmakers on the House China committee said they would "
        "push a bill to block the sales, arguing the chips could end up in military systems.",
        "2025-11-24T09:10:00Z",
        True,
    ),
    SampleItem(
        "beijing-guidance-h20",
        "Beijing tells its tech groups to stop ordering Nvidia's H20",
        "Chinese regulators have told the country's largest internet companies to suspend new "
        "orders of Nvidia's H20 and to explain why they need foreign accelerators at all. The "
        "guidance follows a security probe of the chip by the cyberspace regulator and pushes "
        "buyers towards Huawei's Ascend processors and other domestic alternatives.",
        "2025-09-18T06:30:00Z",
        True,
    ),
    SampleItem(
        "magnet-licensing",
        "China tightens licences on rare-earth magnets as chip talks stall",
        "Exporters of permanent magnets and several rare earths now need a licence from "
        "China's commerce ministry for every shipment. Negotiators in Washington see the "
        "restriction as leverage: Beijing wants US export controls on AI chips eased before it "
        "lets magnet shipments flow freely again.",
        "2025-10-09T14:00:00Z",
        True,
    ),
    SampleItem(
        "dutch-duv-controls",
        "Netherlands widens licence requirement for ASML's DUV lithography machines",
        "The Dutch government will require export licences for more of ASML's deep-ultraviolet "
        "immersion lithography systems and their servicing in China, aligning its equipment "
        "controls more closely with Washington's rules on chipmaking tools.",
        "2025-09-06T11:45:00Z",
        True,
    ),
    SampleItem(
        "phone-launch",
        "A new folding phone arrives with a brighter screen and a bigger battery",
        "The handset maker unveiled its latest folding phone at an event on Tuesday. Reviewers "
        "praised the hinge and the camera; the phone goes on sale next month in Europe.",
        "2025-11-20T18:00:00Z",
        False,
    ),
    SampleItem(
        "soybean-tariffs",
        "Soybean farmers count the cost of the latest tariff round",
        "Growers in the Midwest say Chinese buyers have cancelled orders after the new tariffs "
        "on agricultural goods. Farm groups asked for emergency payments to cover lost sales.",
        "2025-11-02T08:00:00Z",
        False,
    ),
    SampleItem(
        "marathon-record",
        "Kenyan runner sets a course record at the autumn marathon",
        "The race was run in cool weather and the winner broke the course record by forty "
        "seconds, pulling away from the leading group after thirty kilometres.",
        "2025-10-27T12:00:00Z",
        False,
    ),
)

FRENCH_GENERAL: tuple[SampleItem, ...] = (
    SampleItem(
        "recette-automne",
        "Trois recettes de soupe pour les soirées d'automne",
        "Potiron, poireaux et châtaignes : nos idées de soupes simples à préparer en semaine, "
        "avec des légumes de saison et un peu de crème.",
        "2025-10-15T17:00:00Z",
        False,
    ),
    SampleItem(
        "ligue-football",
        "Football : le leader du championnat s'impose à l'extérieur",
        "Grâce à un but en fin de match, l'équipe conserve la tête du classement avant la "
        "trêve internationale. L'entraîneur a salué l'état d'esprit de ses joueurs.",
        "2025-11-09T21:30:00Z",
        False,
    ),
    SampleItem(
        "meteo-tempete",
        "Une tempête attendue sur la façade atlantique ce week-end",
        "Les services météorologiques prévoient des rafales de plus de cent kilomètres par "
        "heure sur les côtes. Plusieurs départements sont placés en vigilance orange.",
        "2025-11-14T07:00:00Z",
        False,
    ),
    SampleItem(
        "huawei-ascend-fr",
        "Pékin pousse ses géants du numérique vers les puces Ascend de Huawei",
        "Les autorités chinoises demandent aux grandes plateformes de réduire leurs achats de "
        "puces Nvidia autorisées à l'exportation et de privilégier les accélérateurs d'IA "
        "conçus en Chine, comme les Ascend de Huawei, au nom de la sécurité nationale.",
        "2025-09-20T10:00:00Z",
        True,
    ),
)
