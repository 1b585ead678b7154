#!/usr/bin/env python3
"""Export a Django project's migrations as SQL for migrate-cli's `django` layout.

Run it with the project's settings, from the folder manage.py is in (or pass --project):

    python /path/to/export_migrations.py --settings mysite.settings OUT

For every migration of Django's migration graph (every installed app, Django's own included)
it writes OUT/APP/NAME.up.sql (`manage.py sqlmigrate APP NAME`), OUT/APP/NAME.down.sql
(`sqlmigrate --backwards`; absent when Django cannot reverse the migration, such as a RunPython
or RunSQL without a reverse) and one OUT/meta.json, in Django's own plan order:

    {"format": "migrate-django-export 1", "django": "5.2.19", "migrations": [
      {"app": "blog", "name": "0001_initial", "requires": ["auth.0001_initial"],
       "atomic": true, "reversible": true, "runs_python": false}, ...]}

`requires` are the migration's dependencies as Django's loader resolves them: `__first__`,
`__latest__` and swappable settings (AUTH_USER_MODEL) resolved, and squashed migrations as
Django itself uses them for the database the export connects to (with nothing applied there,
a squashed migration replaces the ones it squashes; where some of those are applied, Django
keeps them and so does the export). `atomic` is the migration's `atomic` (False for
AddIndexConcurrently). `runs_python` marks operations Django cannot write as SQL (RunPython):
sqlmigrate writes a comment for them, so under migrate only their SQL runs.

sqlmigrate reads constraint names from the server, so each migration's SQL must be made
against the schema the migrations before it leave: the export applies each migration, in
order, to the database it connects to (the project's DATABASES entry, or --database) right
after reading its up SQL, and reads the down SQL then. Point it at an empty scratch database
(pg_test/fixtures/django/make.sh creates and drops one), never at a real one. Leaf conflicts
(two leaf migrations in one app) stop the export, as they stop `manage.py migrate`: run
`manage.py makemigrations --merge` first.
"""

import argparse
import io
import json
import os
import shutil
import sys

FORMAT = "migrate-django-export 1"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the folder to write (its old export is replaced)")
    parser.add_argument("--settings", help="the settings module (default: DJANGO_SETTINGS_MODULE)")
    parser.add_argument("--project", default=".", help="the folder manage.py is in (default: .)")
    parser.add_argument("--database", default="default", help="the DATABASES alias (default: default)")
    args = parser.parse_args()

    sys.path.insert(0, os.path.abspath(args.project))
    if args.settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = args.settings
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        parser.error("pass --settings or set DJANGO_SETTINGS_MODULE")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.db.migrations.exceptions import IrreversibleError
    from django.db.migrations.loader import MigrationLoader

    connection = connections[args.database]
    loader = MigrationLoader(connection)
    if loader.applied_migrations:
        sys.exit("export_migrations: the database has applied migrations; point --database at an empty scratch database")
    conflicts = loader.detect_conflicts()
    if conflicts:
        names = "; ".join(f"{app}: {', '.join(sorted(n))}" for app, n in sorted(conflicts.items()))
        sys.exit(f"export_migrations: conflicting leaf migrations ({names}); run manage.py makemigrations --merge")
    graph = loader.graph

    # Django's own order: the plan to every leaf, dependencies first.
    plan = []
    seen = set()
    for leaf in sorted(graph.leaf_nodes()):
        for key in graph.forwards_plan(leaf):
            if key not in seen:
                seen.add(key)
                plan.append(key)

    def sqlmigrate(app, name, backwards):
        out = io.StringIO()
        call_command("sqlmigrate", app, name, backwards=backwards, database=args.database, stdout=out)
        return out.getvalue()

    # A new export replaces the old one.
    if os.path.exists(os.path.join(args.out, "meta.json")):
        with open(os.path.join(args.out, "meta.json")) as f:
            old = json.load(f)
        for app in {m["app"] for m in old.get("migrations", [])}:
            shutil.rmtree(os.path.join(args.out, app), ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)

    meta = []
    for app, name in plan:
        migration = graph.nodes[(app, name)]
        up = sqlmigrate(app, name, backwards=False)
        call_command("migrate", app, name, database=args.database, verbosity=0, interactive=False)
        try:
            down = sqlmigrate(app, name, backwards=True)
        except IrreversibleError:
            down = None
        runs_python = any(not getattr(op, "reduces_to_sql", True) for op in migration.operations)
        if runs_python:
            print(f"export_migrations: {app}.{name} runs Python (RunPython): only its SQL is exported", file=sys.stderr)
        folder = os.path.join(args.out, app)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}.up.sql"), "w") as f:
            f.write(up)
        if down is not None:
            with open(os.path.join(folder, f"{name}.down.sql"), "w") as f:
                f.write(down)
        parents = sorted(f"{p.key[0]}.{p.key[1]}" for p in graph.node_map[(app, name)].parents)
        meta.append(
            {
                "app": app,
                "name": name,
                "requires": parents,
                "atomic": bool(migration.atomic),
                "reversible": down is not None,
                "runs_python": runs_python,
            }
        )
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump({"format": FORMAT, "django": django.get_version(), "migrations": meta}, f, indent=2)
        f.write("\n")
    print(f"export_migrations: {len(meta)} migrations written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
