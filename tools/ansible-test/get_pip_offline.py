# Offline stand-in for ansible-test's get-pip download (its host is not reachable from
# every machine): bootstrap pip from the interpreter's bundled wheel, then install what
# was asked. ensurepip runs in its own process so pip's own config (CA bundle) applies.
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
