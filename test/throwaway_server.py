"""A throwaway PostgreSQL 15 with pgtopic preloaded, for the Python checks under test/
(test/fuzz/property_test.py, test/chaos/chaos_check.py). Run as root, the server runs as the
postgres user, with its own directory as working directory (never the checkout, which postgres may
not be able to read); it listens only on a Unix socket in that directory."""

import os
import shutil
import subprocess


def as_postgres(cmd):
    return (['runuser', '-u', 'postgres', '--'] + cmd) if os.geteuid() == 0 else cmd


def crash_lines(log, since=0):
    """Crash, TRAP and PANIC lines of the server log after byte offset since; and the new offset."""
    if log is None or not os.path.exists(log):
        return [], since
    with open(log, 'rb') as f:
        f.seek(since)
        data = f.read()
    lines = [line for line in data.decode('utf-8', 'replace').splitlines()
             if any(k in line for k in ('terminated by signal', 'terminated by exception', 'TRAP: ', 'PANIC: '))]
    return lines, since + len(data)


def connect_with_extension(dsn):
    """An autocommit connection to dsn's database, with pgtopic created there if missing
    (notices below warning silenced)."""
    import psycopg2
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute('SET client_min_messages = warning')
    cur.execute('CREATE EXTENSION IF NOT EXISTS pgtopic')
    return conn


class ThrowawayServer:
    """initdb in directory/data, `settings` appended to postgresql.conf after the socket and
    preload lines; start() also creates `database` when it is not postgres."""

    def __init__(self, bindir, directory, port, settings='', database='postgres'):
        self.bindir, self.dir, self.port, self.settings, self.database = bindir, directory, port, settings, database
        self.data = os.path.join(directory, 'data')
        self.log = os.path.join(directory, 'server.log')
        self.dsn = f'host={directory} port={port} dbname={database} user=postgres'

    def start(self):
        import psycopg2
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        subprocess.run(as_postgres([os.path.join(self.bindir, 'initdb'), '-D', self.data, '-A', 'trust', '-U',
                                    'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']),
                       check=True, stdout=subprocess.DEVNULL, cwd=self.dir)
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            f.write(f"""
port = {self.port}
listen_addresses = ''
unix_socket_directories = '{self.dir}'
shared_preload_libraries = 'pgtopic'
{self.settings}""")
        subprocess.run(as_postgres([os.path.join(self.bindir, 'pg_ctl'), '-D', self.data, '-l', self.log, '-w',
                                    '-t', '60', 'start']), check=True, stdout=subprocess.DEVNULL, cwd=self.dir)
        if self.database != 'postgres':
            su = psycopg2.connect(host=self.dir, port=self.port, user='postgres', dbname='postgres')
            su.autocommit = True
            su.cursor().execute('CREATE DATABASE %s' % self.database)
            su.close()

    def stop(self):
        subprocess.run(as_postgres([os.path.join(self.bindir, 'pg_ctl'), '-D', self.data, '-m', 'fast', '-w',
                                    'stop']), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd='/')
