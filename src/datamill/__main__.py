from datamill.cli import run

run()
