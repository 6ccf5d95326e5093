"""Opening PostgreSQL: tunesmith's session settings add to the URL's own options."""

from sqlalchemy import text

from tunesmith.store.db import make_engine


def test_url_options_are_kept_beside_ours(postgres_database):
    url = postgres_database.update_query_dict({"options": "-csearch_path=elsewhere"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW search_path")).scalar() == "elsewhere"
            assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "10s"
    finally:
        engine.dispose()
