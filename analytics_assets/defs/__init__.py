"""dg's defs folder: what Dagster loads from here is what is here (`load_from_defs_folder`).

Each API is a component instance, a folder holding a `defs.yaml` (`analytics/` is the built-in
one); `dg scaffold defs` adds more, and plain Python modules too. The project's own builder
functions live in `analytics_assets/builders/`, not here.
"""
