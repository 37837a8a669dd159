"""The bundled sample corpus, written by the docvec authors: generated deterministically, no downloads.

Ten topics × generated notes, plus hand-written "anchor" documents that the labelled queries point at.
Days are relative to an end date (default: today) so the sample always sits inside the retention window.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAYS = 7


@dataclass(frozen=True)
class Topic:
    slug: str
    subjects: tuple[str, ...]
    facts: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    Topic("databases", ("orders table", "billing service", "audit log", "session store", "inventory index",
                        "analytics warehouse", "user profile store", "event queue"),
          ("The {s} runs on PostgreSQL and is vacuumed nightly to keep table bloat low.",
           "Queries against the {s} use a B-tree index on the primary key and rarely need a sequential scan.",
           "Replication for the {s} streams write-ahead log records to a hot standby in another zone.",
           "Connection pooling through PgBouncer keeps the {s} under its max_connections limit at peak load.",
           "A nightly logical backup of the {s} is restored weekly to prove that recovery works.",
           "Slow queries on the {s} are found with EXPLAIN ANALYZE and pg_stat_statements.",
           "Schema changes to the {s} ship as reviewed migrations with a tested downgrade.")),
    Topic("beekeeping", ("north meadow hive", "orchard colony", "rooftop apiary", "heather hive", "swarm box",
                         "observation hive", "lavender colony", "wildflower apiary"),
          ("The {s} was inspected for varroa mites and treated with oxalic acid in late autumn.",
           "Worker bees in the {s} collected nectar from clover and stored capped honey in the super.",
           "The queen of the {s} was marked with a dot of paint so the keeper can find her quickly.",
           "Before winter the {s} was fed sugar syrup so the cluster has enough stores until spring.",
           "Smoke calms the bees of the {s} during an inspection by masking their alarm pheromone.",
           "The {s} built new comb on the foundation frames within a week of the nectar flow.",
           "Drones in the {s} were expelled by the workers as the days grew shorter.")),
    Topic("astronomy", ("Andromeda galaxy", "Orion nebula", "Jupiter's moons", "Saturn's rings", "Pleiades cluster",
                        "Crab nebula", "Mars opposition", "Perseid meteor shower"),
          ("Through a small telescope the {s} is best observed on a moonless night away from city lights.",
           "Astrophotographers stack many short exposures of the {s} to reduce sensor noise.",
           "The {s} is easiest to find by star hopping from the brightest nearby constellation.",
           "Light from the {s} reaches Earth after travelling for a very long time across space.",
           "A red torch keeps your eyes dark-adapted while you sketch the {s} at the eyepiece.",
           "Binoculars with a wide field show the {s} well for beginners.",
           "Spectroscopy of the {s} reveals which chemical elements are present.")),
    Topic("baking", ("rye sourdough", "seeded loaf", "country boule", "whole wheat batard", "focaccia",
                     "brioche", "bagels", "spelt sandwich bread"),
          ("The {s} uses a starter that is fed flour and water twelve hours before mixing.",
           "Bulk fermentation of the {s} takes about five hours at room temperature with stretch and folds.",
           "The {s} is baked in a preheated Dutch oven so steam gives the crust its blistered shine.",
           "Hydration for the {s} is around seventy-five percent, which makes the dough slack and open.",
           "Scoring the {s} with a razor lets it expand evenly in the oven.",
           "An overnight cold proof in the fridge deepens the sour flavour of the {s}.",
           "The {s} should cool on a rack for an hour before slicing so the crumb sets.")),
    Topic("cycling", ("road bike", "gravel bike", "commuter bike", "mountain bike", "tandem", "cargo bike",
                      "folding bike", "track bike"),
          ("The chain of the {s} is cleaned with degreaser and lubricated every few hundred kilometres.",
           "Tyre pressure on the {s} is checked before each ride to avoid pinch flats.",
           "Brake pads on the {s} wear faster in wet weather and are replaced when the grooves vanish.",
           "The derailleur of the {s} is indexed by turning the barrel adjuster a quarter turn at a time.",
           "A torque wrench keeps the carbon parts of the {s} from being overtightened.",
           "The {s} needs its headset adjusted when the fork knocks under braking.",
           "Tubeless sealant in the {s} is topped up every few months because it dries out.")),
    Topic("volcanoes", ("Mount Etna", "Kilauea", "Eyjafjallajokull", "Mount Fuji", "Stromboli", "Krakatoa",
                        "Mount St. Helens", "Popocatepetl"),
          ("Seismometers around {s} record swarms of small earthquakes as magma rises.",
           "Gas monitoring at {s} measures sulphur dioxide to anticipate eruptions.",
           "Lava flows from {s} are basaltic and fluid, travelling far before they cool.",
           "Ash clouds from {s} can ground aircraft because volcanic glass damages jet engines.",
           "Satellite radar detects the ground around {s} swelling by a few centimetres.",
           "Pyroclastic flows at {s} are avalanches of hot gas and rock moving downhill at great speed.",
           "Farmers near {s} benefit from fertile volcanic soil despite the risk.")),
    Topic("jazz", ("bebop trumpet", "modal saxophone", "stride piano", "walking bass", "brushed drums",
                   "big band arrangement", "vocal scat", "hard bop quintet"),
          ("The {s} improvises over the chord changes of a standard from the Great American Songbook.",
           "A solo on the {s} often quotes the melody before moving into faster runs.",
           "Musicians learn the {s} style by transcribing recordings note by note.",
           "The {s} swings by placing the eighth notes slightly behind the beat.",
           "In a jam session the {s} trades fours with the drummer near the end of the tune.",
           "The {s} uses blue notes and call and response that come from the blues.",
           "Recordings of the {s} from the 1950s were made live to tape in a single take.")),
    Topic("shipping", ("container terminal", "feeder vessel", "reefer container", "bulk carrier", "port crane",
                       "customs broker", "rail intermodal yard", "transshipment hub"),
          ("The {s} handles twenty-foot equivalent units that are tracked by their ISO container code.",
           "Delays at the {s} ripple along the supply chain when a vessel misses its berth window.",
           "The {s} depends on accurate bills of lading to clear cargo through customs.",
           "Fuel costs for the {s} rise when ships sail faster to make up lost schedule.",
           "The {s} plans stowage so that heavy boxes sit low and reefers reach power points.",
           "Demurrage fees are charged when boxes stay at the {s} longer than the free time.",
           "Automation at the {s} uses straddle carriers guided by GPS.")),
    Topic("houseplants", ("monstera", "snake plant", "fiddle leaf fig", "pothos", "peace lily", "calathea",
                          "jade plant", "Boston fern"),
          ("The {s} prefers bright indirect light and scorches in direct afternoon sun.",
           "Water the {s} only when the top few centimetres of soil are dry to avoid root rot.",
           "The {s} is repotted in spring into a pot one size larger with fresh well-draining mix.",
           "Yellow leaves on the {s} usually mean overwatering rather than a lack of fertiliser.",
           "The {s} enjoys higher humidity, so a pebble tray helps in winter when heating dries the air.",
           "Pests such as spider mites on the {s} are wiped off with diluted soap.",
           "Cuttings of the {s} root in a glass of water within a few weeks.")),
    Topic("chess", ("Sicilian Defence", "Queen's Gambit", "Ruy Lopez", "King's Indian Defence", "French Defence",
                    "Caro-Kann", "English Opening", "Italian Game"),
          ("In the {s} both sides race to develop pieces and castle before opening the centre.",
           "Grandmasters prepare the {s} with engines, memorising lines twenty moves deep.",
           "A common trap in the {s} wins a piece if the opponent grabs a poisoned pawn.",
           "The pawn structure of the {s} decides which endgames are favourable.",
           "Club players learn the {s} by its plans rather than by memorising every move.",
           "The {s} often leads to a middlegame with attacks on opposite wings.",
           "Blitz games in the {s} reward quick pattern recognition over deep calculation.")),
)

AUTHORS = ("ana", "bo", "chen", "dara", "eli", "femi")


@dataclass(frozen=True)
class Anchor:
    path: str
    day_offset: int  # days before the end date
    topic: str
    body: str


# Templated bodies, as real runbooks and product sheets are: only the identifier in the title differs.
RUNBOOK_BODY = (
    "The payment gateway rejected the nightly ledger batch. First check the gateway status page and the "
    "batch export log for the run. If the gateway is healthy, re-export the batch from the ledger, verify "
    "the row count against the day's entries, and submit it again through the billing console. Do not "
    "edit the batch file by hand: the gateway verifies its checksum. If the same error comes back after "
    "a second submission, page the billing on-call engineer with the batch id and the export log attached, "
    "and note the incident in the billing channel so that finance knows the settlement may be late."
)
GRINDER_BODY = (
    "This espresso grinder has flat steel burrs, a dosing cup and a stepless adjustment collar. Grind size "
    "is set by turning the collar: finer for espresso, coarser for filter. Clean the burrs every two weeks "
    "with grinder cleaning tablets and brush out the chute. Never grind flavoured or oily beans, which gum "
    "up the burrs. The hopper is removable for cleaning and the machine switches off after two minutes idle."
)

ANCHORS: tuple[Anchor, ...] = (
    Anchor("databases/pgvector-hnsw-tuning.md", 6, "databases",
           "# Tuning HNSW indexes in pgvector\n\nAn HNSW index in pgvector is built with the parameters m and "
           "ef_construction. Larger m gives each node more neighbours and raises recall at the cost of memory. "
           "At query time hnsw.ef_search controls how many candidates are explored.\n\nBuild the index after "
           "bulk loading with COPY, give maintenance_work_mem enough memory to hold the graph, and check recall "
           "against an exact scan before trusting it."),
    Anchor("beekeeping/winter-cluster.md", 5, "beekeeping",
           "# How honey bees survive winter\n\nHoney bees do not hibernate. They form a tight winter cluster "
           "around the queen and shiver their flight muscles to generate heat, keeping the centre of the "
           "cluster near thirty-five degrees. Bees rotate from the cold outer shell to the warm core and eat "
           "stored honey for energy."),
    Anchor("astronomy/black-hole-image.md", 4, "astronomy",
           "# Photographing a black hole\n\nThe Event Horizon Telescope combined radio dishes across the planet "
           "into one Earth-sized interferometer. In 2019 it produced the first image of the shadow of the "
           "supermassive black hole in the galaxy M87, a bright ring of glowing gas around a dark centre."),
    Anchor("baking/starter-revival.md", 3, "baking",
           "# Reviving a neglected sourdough starter\n\nA starter left in the fridge for weeks turns grey with a "
           "layer of hooch on top. Pour off the liquid, discard most of the starter and feed it equal weights "
           "of flour and water twice a day. After three days of feeding it should double within six hours and "
           "smell pleasantly sour again."),
    Anchor("cycling/tubeless-puncture.md", 2, "cycling",
           "# Fixing a tubeless tyre puncture on the roadside\n\nIf sealant cannot close a hole in a tubeless "
           "tyre, push a rubber plug into the puncture with the reamer tool and trim it flush. Reinflate with a "
           "CO2 cartridge. For a large sidewall cut, fit an inner tube and a tyre boot to get home."),
    Anchor("volcanoes/eyjafjallajokull-2010.md", 1, "volcanoes",
           "# The 2010 eruption that stopped European air travel\n\nWhen the Icelandic volcano erupted under a "
           "glacier in April 2010, meltwater shattered the magma into fine glassy ash. Winds carried the ash "
           "cloud over Europe and airspace was closed for six days, grounding around one hundred thousand "
           "flights."),
    Anchor("jazz/kind-of-blue.html", 0, "jazz",
           "<html><head><title>Kind of Blue and modal jazz</title><script>var tracking = 1;</script></head>"
           "<body><h1>Kind of Blue and modal jazz</h1><p>Miles Davis recorded Kind of Blue in 1959 with John "
           "Coltrane and Bill Evans. Instead of fast chord changes the tunes are built on scales, or modes, "
           "which gave soloists long stretches of one harmony to explore.</p><p>So What is built on the Dorian "
           "mode.</p></body></html>"),
    Anchor("shipping/suez-blockage.txt", 4, "shipping",
           "The Ever Given blockage of the Suez Canal\n\nIn March 2021 the container ship Ever Given ran aground "
           "in the Suez Canal in high winds and blocked it for six days. Hundreds of ships queued at both ends, "
           "and some rerouted around the Cape of Good Hope, adding about two weeks to their voyage."),
    Anchor("houseplants/overwatering-rescue.md", 2, "houseplants",
           "# Rescuing an overwatered plant with root rot\n\nMushy brown roots that smell of decay mean root "
           "rot. Unpot the plant, cut away every soft root with clean scissors, and repot it in fresh dry mix "
           "in a pot with drainage holes. Water sparingly until new growth appears."),
    Anchor("chess/en-passant.md", 0, "chess",
           "# The en passant rule\n\nWhen a pawn advances two squares from its starting rank and lands beside "
           "an enemy pawn, that enemy pawn may capture it as if it had moved only one square. The capture must "
           "be made immediately on the next move or the right is lost."),
    # Near-twins that differ by an identifier only, as error catalogues and product lines do: a sentence
    # embedding barely tells ERR-4471 from ERR-4417, full-text search matches the code exactly. They make
    # the hybrid-vs-vector evaluation meaningful.
    *(Anchor(f"runbooks/err-{code}.md", offset, "runbooks", f"# Runbook for error ERR-{code}\n\n{RUNBOOK_BODY}")
      for code, offset in (("4471", 3), ("4417", 2), ("4714", 1), ("7441", 4), ("1447", 5))),
    *(Anchor(f"products/zephyrine-{model.lower()}.md", offset, "products",
             f"# Zephyrine {model} espresso grinder\n\n{GRINDER_BODY}")
      for model, offset in (("X2", 4), ("X3", 3), ("X5", 2), ("X7", 1))),
    Anchor("api/reconcile-ledger-batch.md", 2, "api",
           "# reconcile_ledger_batch(batch_id)\n\nreconcile_ledger_batch matches the entries of a ledger batch "
           "against the bank statement and returns the entries left unmatched. Calling it twice returns the "
           "same result."),
    Anchor("api/reconcile-ledger-entry.md", 1, "api",
           "# reconcile_ledger_entry(entry_id)\n\nreconcile_ledger_entry matches the entry of a ledger batch "
           "against the bank statement and returns the entry if left unmatched. Calling it twice returns the "
           "same result."),
)

LABELLED_QUERIES: tuple[tuple[str, str], ...] = (
    ("how do I tune ef_search and m for an hnsw vector index", "databases/pgvector-hnsw-tuning.md"),
    ("how do bees keep warm in the cold months", "beekeeping/winter-cluster.md"),
    ("first picture of a black hole from radio telescopes", "astronomy/black-hole-image.md"),
    ("my sourdough starter smells bad and has liquid on top", "baking/starter-revival.md"),
    ("repair a flat tubeless tire while riding", "cycling/tubeless-puncture.md"),
    ("Icelandic volcano ash cloud closed airspace", "volcanoes/eyjafjallajokull-2010.md"),
    ("Miles Davis album built on modes", "jazz/kind-of-blue.html"),
    ("container ship stuck in the Suez canal", "shipping/suez-blockage.txt"),
    ("plant roots are mushy and rotting", "houseplants/overwatering-rescue.md"),
    ("special pawn capture rule", "chess/en-passant.md"),
)

# Queries that hinge on an exact identifier (error code, function name, product model).
IDENTIFIER_QUERIES: tuple[tuple[str, str], ...] = (
    ("ERR-4471", "runbooks/err-4471.md"),
    ("what does ERR-4417 mean", "runbooks/err-4417.md"),
    ("gateway rejected the batch with ERR-4714", "runbooks/err-4714.md"),
    ("ERR-7441 again after resubmitting", "runbooks/err-7441.md"),
    ("ERR-1447", "runbooks/err-1447.md"),
    ("Zephyrine X5 cleaning", "products/zephyrine-x5.md"),
    ("Zephyrine X7", "products/zephyrine-x7.md"),
    ("Zephyrine X2 burrs", "products/zephyrine-x2.md"),
    ("reconcile_ledger_entry", "api/reconcile-ledger-entry.md"),
    ("what does reconcile_ledger_batch return", "api/reconcile-ledger-batch.md"),
)


def _note(topic: Topic, subject: str, rng: random.Random) -> str:
    facts = rng.sample(topic.facts, k=rng.randint(2, 4))
    return " ".join(fact.format(s=subject) for fact in facts)


def write_sample_corpus(landing_dir: Path, end: dt.date | None = None, days: int = DAYS,
                        notes_per_topic_per_day: int = 5, seed: int = 7) -> dict[str, int]:
    """Write the corpus under ``landing_dir`` (one folder per day). Deterministic for a given end date.
    Returns counts. Existing files with the same names are overwritten; others are left alone."""
    end = end or dt.date.today()
    rng = random.Random(seed)
    written = 0
    first_day = end - dt.timedelta(days=days - 1)
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        folder = landing_dir / day.isoformat()
        for topic in TOPICS:
            for n in range(notes_per_topic_per_day):
                subject = rng.choice(topic.subjects)
                author = rng.choice(AUTHORS)
                body = _note(topic, subject, rng)
                path = folder / topic.slug / f"note-{offset:02d}-{n:02d}.md"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"---\ntopic: {topic.slug}\nauthor: {author}\nsubject: {subject}\n---\n"
                                f"# {subject.capitalize()}\n\n{body}\n", encoding="utf-8")
                written += 1
    for anchor in ANCHORS:
        day = end - dt.timedelta(days=min(anchor.day_offset, days - 1))
        path = landing_dir / day.isoformat() / anchor.path
        path.parent.mkdir(parents=True, exist_ok=True)
        body = anchor.body
        if path.suffix == ".md":
            body = f"---\ntopic: {anchor.topic}\nauthor: docvec\n---\n{body}"
        path.write_text(body + "\n", encoding="utf-8")
        written += 1
    return {"documents": written, "days": days, "first_day": first_day.toordinal(), "last_day": end.toordinal()}


def labelled_queries() -> list[dict[str, Any]]:
    """The sample corpus's labelled set, in the JSONL shape ``docvec eval`` reads."""
    return ([{"query": q, "expected_doc_ids": [d], "tags": ["general"]} for q, d in LABELLED_QUERIES]
            + [{"query": q, "expected_doc_ids": [d], "tags": ["identifier"]} for q, d in IDENTIFIER_QUERIES])


def write_labelled_queries(path: Path) -> Path:
    """The labelled queries as JSONL: ``{"query": ..., "expected_doc_ids": [...], "tags": [...]}`` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for entry in labelled_queries():
            handle.write(json.dumps(entry) + "\n")
    return path
