"""Alembic environment of this application (created by ``tenfold db init``).

tenfold runs it: ``tenfold db upgrade`` / ``downgrade`` / ``revision`` /
``current`` pass the database settings in, so no URL (and no password) is
written in any file here. Migrations run online on the async engine.
"""

from alembic import context

from tenfold.db.migrations import run_env

# For `tenfold db revision --autogenerate`, point this at your models' MetaData:
#     from myapp.models import Base
#     target_metadata = Base.metadata
target_metadata = None

run_env(context, target_metadata)
