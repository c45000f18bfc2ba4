"""``resolve(config, export_dir) -> Context``: the one place configuration meets the model.

Every file the server would read (the batching file, the version directory's
``batching_params.pbtxt``, the platform config, ``saved_model_config.pb``) is read here,
the MetaGraph is picked by the tags the server would use, op libraries are loaded and
the signatures to warm are named. ``plan``, ``add_warmup``, ``check``, the Beam
selection, fleet workers and ``bench`` all take the resulting ``Context``, so none of
them can resolve the server differently from the others (local and Beam once did).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from tfwarm_export import analysis
from tfwarm_export.config import WarmupConfig
from tfwarm_export.model.oplibs import ensure_ops
from tfwarm_export.model.signatures import DEFAULT_TAGS, ModelSignatures, read_signatures
from tfwarm_export.planning.input_options import ResolvedInputs, resolve_inputs
from tfwarm_export.planning.keys import validate_keys
from tfwarm_export.serving.batching import BatchingConfig
from tfwarm_export.serving.replay import Replayer
from tfwarm_export.serving.serving_config import ServerSettings, resolve_server
from tfwarm_export.traffic import TrafficSelection


@dataclass(frozen=True)
class Context:
    """A model directory under one ``WarmupConfig``, resolved as TF Serving would load it.

    Attributes:
      export_dir: the version directory.
      config: the options (already validated by ``WarmupConfig``).
      server: batching, warmup options, session config and tags the server uses.
      model: the signatures of the MetaGraph ``tags`` pick (op libraries loaded first).
      wanted: the signatures to warm, in order (``config.signatures`` or every one).
      selection: the requests selected from ``config.traffic``/``config.previous_version``,
        made once at the edge (``api.select``: locally, or as a Beam pipeline on
        ``config.runner``) and handed to the planner; None before that, or without traffic.
      inputs: the per-input options (overrides, dim sizes, shapes, image sizes) resolved once
        per (signature, alias or feature), so the planner never reads the raw keys.
    """

    export_dir: str
    config: WarmupConfig
    server: ServerSettings
    model: ModelSignatures
    wanted: tuple[str, ...]
    selection: TrafficSelection | None = None
    inputs: ResolvedInputs | None = None

    @property
    def batching(self) -> BatchingConfig | None:
        return self.server.batching

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.model.tags)

    @property
    def allowed_batch_sizes(self) -> tuple[int, ...]:
        return self.batching.allowed_batch_sizes if self.batching is not None else ()

    def graph_index(self) -> analysis.GraphIndex:
        """The model's graph index (built once per MetaGraph, ``analysis.index_for``)."""
        return analysis.index_for(self.model.meta_graph)

    def replayer(self) -> Replayer:
        """A Replayer that loads the model as the server would (tags, batching, session config,
        op libraries): the one way ``add`` and ``check`` replay."""
        return Replayer(self.export_dir, self.tags, self.batching, session_config=self.server.session_config,
                        op_libraries=self.config.op_libraries)

    def with_config(self, **changes) -> "Context":
        """The same resolved model and server under changed options that do not touch them
        (e.g. ``overwrite=True``). Changing ``traffic``/``previous_version`` drops the selection."""
        selection = None if {"traffic", "previous_version"} & set(changes) else self.selection
        config = self.config.replace(**changes)
        return dataclasses.replace(self, config=config, selection=selection,
                                   inputs=resolve_inputs(self.model, config))

    def with_selection(self, selection: TrafficSelection | None) -> "Context":
        """The same context with its traffic selection made (``api.select``)."""
        return dataclasses.replace(self, selection=selection)


def serving_tags(config_tags, server: ServerSettings) -> tuple[str, ...]:
    """The MetaGraph tags: the platform config's ``saved_model_tags`` unless tags were given."""
    if server.tags and tuple(config_tags) == tuple(DEFAULT_TAGS):
        return tuple(server.tags)
    return tuple(config_tags)


def resolve(config: WarmupConfig | None, export_dir: str | os.PathLike, *,
            server: ServerSettings | None = None) -> Context:
    """Read what the server would read for ``export_dir`` under ``config``, once.

    ``server`` skips the server's resolution when a caller already holds it (a fleet
    worker deciding per-version batching); nothing else reads a configuration file.
    """
    config = config or WarmupConfig()
    export_dir = os.fspath(export_dir)
    if server is None:
        server = resolve_server(export_dir, platform_config=config.platform_config,
                                batching_parameters=config.batching_parameters,
                                ignore_per_model_batching=config.ignore_per_model_batching)
    tags = serving_tags(config.tags, server)
    model = read_signatures(export_dir, tags)
    if ensure_ops(model.meta_graph, config.op_libraries, export_dir):
        model = read_signatures(export_dir, tags)  # graph inference sees the new ops
    validate_keys(model, config)  # every per-input key names something: an error here, never ignored
    if config.signatures is not None:
        wanted = tuple(dict.fromkeys(config.signatures))
        for name in wanted:
            model.get(name)  # raises SignatureError naming the available ones
    else:
        wanted = tuple(sorted(model.signatures))
    return Context(export_dir=export_dir, config=config, server=server, model=model, wanted=wanted,
                   inputs=resolve_inputs(model, config))


__all__ = ["Context", "resolve", "serving_tags"]
