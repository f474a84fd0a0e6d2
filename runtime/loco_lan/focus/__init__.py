"""The focus service: which emulators the players are looking at right now.

``state`` holds the rules (single/multi focus, validation, persistence),
``service`` serves them over HTTP and WebSocket, ``quota`` turns focus into CPU
shares or paused guests, ``client`` is the synchronous client the CLI and the
Ansible module use, ``ev3_twin`` drives the service the way the EV3 brick does.
"""
