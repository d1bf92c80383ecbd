"""Published cells, by name, as architectures of this package's spaces."""

from __future__ import annotations

from optuna_nas.errors import ArchitectureError
from optuna_nas.spaces._base import Architecture
from optuna_nas.spaces._darts import DartsCells, NasNetCells

# Genotypes as published with DARTS' code (Liu et al. 2019), in its string form.
_GENOTYPES: dict[str, tuple[str, str]] = {
    "DARTS_V1": (
        "darts",
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
        "reduce_concat=[2, 3, 4, 5])",
    ),
    "DARTS_V2": (
        "darts",
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])",
    ),
    "NASNet-A": (
        "nasnet",
        "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), "
        "('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), "
        "('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1)], "
        "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), "
        "('max_pool_3x3', 1), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), "
        "('skip_connect', 3), ('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[4, 5, 6])",
    ),
    "AmoebaNet-A": (
        "nasnet",
        "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), "
        "('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 1)], "
        "normal_concat=[4, 5, 6], reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), "
        "('max_pool_3x3', 0), ('sep_conv_7x7', 2), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], "
        "reduce_concat=[3, 4, 6])",
    ),
}


def list_published_cells() -> list[str]:
    """The names of the published cells :func:`published_cell` knows."""
    return sorted(_GENOTYPES)


def published_cell(name: str) -> tuple[DartsCells, Architecture]:
    """A published cell as ``(space, architecture)``; ``space.build(arch, ...)`` builds it.

    DARTS_V1 and DARTS_V2 (Liu et al. 2019) live in :class:`DartsCells`; NASNet-A (Zoph et
    al. 2018) and AmoebaNet-A (Real et al. 2019) in :class:`NasNetCells`.

    Args:
        name: One of :func:`list_published_cells`.
    """
    if name not in _GENOTYPES:
        raise ArchitectureError(
            f"Unknown published cell {name!r}; known cells are {list_published_cells()}."
        )
    kind, string = _GENOTYPES[name]
    space = DartsCells() if kind == "darts" else NasNetCells()
    return space, space.parse(string)
