#!/usr/bin/python3
"""spice-gtk's PortChannel (SpiceClientGLib) against our server: wait for the port, send a
PORT_EVENT break, write a payload and wait for it to come back (the server's device
echoes). Usage: gtk_port.py PORT PAYLOAD_REPEAT. Prints lines:
  port:<name>:<opened> / sent / echo-ok:<bytes> / error:<what>
Exits 0 once the echo is complete, 2 on a channel error, 3 on timeout."""
import ctypes
import sys
import gi
gi.require_version('SpiceClientGLib', '2.0')
from gi.repository import GLib, GObject, SpiceClientGLib as S

port = sys.argv[1]
repeat = int(sys.argv[2])
payload = b''.join(b'line %06d from spice-gtk\n' % i for i in range(repeat))
loop = GLib.MainLoop()
result = {'code': 3}
received = bytearray()
session = S.Session()
session.set_property('host', '127.0.0.1')
session.set_property('port', port)


def finish(code):
    result['code'] = code
    loop.quit()
    return False


def on_written(channel, res, _data):
    try:
        channel.write_finish(res)
    except GLib.Error as e:
        print('error:write:%s' % e, flush=True)
        finish(2)


def on_port_data(channel, data, size):
    received.extend(ctypes.string_at(data, size))
    if len(received) >= len(payload):
        if bytes(received[:len(payload)]) == payload:
            print('echo-ok:%d' % len(received), flush=True)
            GLib.timeout_add(300, finish, 0)
        else:
            print('error:echo-differs', flush=True)
            finish(2)


def start_port(channel):
    name = channel.get_property('port-name')
    opened = channel.get_property('port-opened')
    print('port:%s:%s' % (name, opened), flush=True)
    # spice-gtk sends OPENED/CLOSED itself (connection state); only BREAK and above here.
    channel.event(2)  # SPICE_PORT_EVENT_BREAK
    channel.write_async(payload, None, on_written, None)
    print('sent', flush=True)
    return False


def on_event(channel, event):
    name = type(channel).__name__
    if event == S.ChannelEvent.OPENED:
        if isinstance(channel, S.PortChannel):
            # PORT_INIT follows the link; give it a moment.
            GLib.timeout_add(200, start_port, channel)
    elif event != S.ChannelEvent.CLOSED:
        print('error:%s:%s' % (name, event.value_nick), flush=True)
        finish(2)


def on_new(sess, channel):
    if isinstance(channel, S.PortChannel):
        GObject.Object.connect(channel, 'port-data', on_port_data)
    GObject.Object.connect(channel, 'channel-event', on_event)
    channel.connect()


GObject.Object.connect(session, 'channel-new', on_new)
session.connect()
GLib.timeout_add(20000, finish, 3)
loop.run()
session.disconnect()
sys.exit(result['code'])
