"""What an import did: counts, rejected lines, and a French summary for the operator."""

from __future__ import annotations

from dataclasses import dataclass, field

from coordination.directory.store import Counts

# Rejections kept in full for the report; the rest are only counted (memory stays flat).
MAX_KEPT_REJECTIONS = 200


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line (or FHIR entry) that was not imported, with where it is and why (in French)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Rejections:
    """Counts every rejection, keeps the first ``MAX_KEPT_REJECTIONS``."""

    total: int = 0
    kept: list[Rejection] = field(default_factory=list)

    def add(self, file: str, line: int, reason: str) -> None:
        self.total += 1
        if len(self.kept) < MAX_KEPT_REJECTIONS:
            self.kept.append(Rejection(file, line, reason))


@dataclass
class ImportReport:
    """Result of one import. ``full`` imports are snapshots (they deactivate); deltas never do."""

    source: str
    full: bool
    sources: list[str]
    lines: int = 0
    persons: Counts = field(default_factory=Counts)
    structures: Counts = field(default_factory=Counts)
    activities: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def added(self) -> int:
        return self.persons.added + self.structures.added

    @property
    def updated(self) -> int:
        return self.persons.updated + self.structures.updated

    @property
    def deactivated(self) -> int:
        return self.persons.deactivated + self.structures.deactivated

    @property
    def reactivated(self) -> int:
        return self.persons.reactivated + self.structures.reactivated

    def summary(self, *, max_rejections: int = 20) -> list[str]:
        """The operator's summary, in French, one line per item."""
        kind = "complet (instantané)" if self.full else "différentiel (--since)"
        out = [
            f"Import {self.source.upper()} {kind} : {', '.join(self.sources)}",
            f"  lignes lues            : {self.lines}",
            f"  professionnels         : {self.persons.seen}  (ajoutés {self.persons.added}, "
            f"modifiés {self.persons.updated}, désactivés {self.persons.deactivated}, "
            f"réactivés {self.persons.reactivated})",
            f"  activités              : {self.activities}",
            f"  structures             : {self.structures.seen}  (ajoutées {self.structures.added}, "
            f"modifiées {self.structures.updated}, désactivées {self.structures.deactivated}, "
            f"réactivées {self.structures.reactivated})",
            f"  total                  : ajoutés {self.added} / modifiés {self.updated} / "
            f"désactivés {self.deactivated} / réactivés {self.reactivated} / rejetés {self.rejected}",
            f"  durée                  : {self.seconds:.1f} s",
        ]
        if self.rejected:
            shown = self.rejections[:max_rejections]
            out.append(f"  lignes rejetées (les {len(shown)} premières sur {self.rejected}) :")
            out.extend(f"    {r}" for r in shown)
        return out
