"""Database routing: the regulator reports read from the replica while they are computed; everything else, and
every write, uses the primary (see ``cgtclinic.reporting.database``)."""

from django.db import DEFAULT_DB_ALIAS

from cgtclinic.reporting.database import reporting_alias, reports_database


class ReportsReplicaRouter:
    def db_for_read(self, model, **hints):
        return reporting_alias()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replica holds the primary's rows: an object read from one may refer to an object read from the other.
        if {obj1._state.db, obj2._state.db} <= {DEFAULT_DB_ALIAS, reports_database()}:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # The replica follows the primary's schema through replication; migrations run on the primary only.
        if db != DEFAULT_DB_ALIAS and db == reports_database():
            return False
        return None
