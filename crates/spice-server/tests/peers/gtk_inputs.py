#!/usr/bin/python3
"""spice-gtk (SpiceClientGLib) against our server: link main and inputs, send keys and mouse
events, print what happened. Usage: gtk_inputs.py PORT [PASSWORD]. Prints lines:
  main-opened / inputs-opened / sent / error:<event>
Exits 0 after sending, 2 on a channel error, 3 on timeout."""
import sys
import gi
gi.require_version('SpiceClientGLib', '2.0')
from gi.repository import GLib, GObject, SpiceClientGLib as S

port = sys.argv[1]
password = sys.argv[2] if len(sys.argv) > 2 else None
loop = GLib.MainLoop()
result = {'code': 3}
session = S.Session()
session.set_property('host', '127.0.0.1')
session.set_property('port', port)
if password is not None:
    session.set_property('password', password)


def finish(code):
    result['code'] = code
    loop.quit()
    return False


def send_inputs(inputs):
    inputs.key_press(0x1e)
    inputs.key_release(0x1e)
    inputs.key_press(0x11d)   # right ctrl (extended)
    inputs.key_release(0x11d)
    inputs.motion(5, -3, 0)
    inputs.button_press(1, 1)   # SPICE_MOUSE_BUTTON_LEFT, mask LEFT
    inputs.button_release(1, 0)
    print('sent', flush=True)
    GLib.timeout_add(700, finish, 0)


def on_event(channel, event):
    name = type(channel).__name__
    if event == S.ChannelEvent.OPENED:
        if isinstance(channel, S.MainChannel):
            print('main-opened', flush=True)
        if isinstance(channel, S.InputsChannel):
            print('inputs-opened', flush=True)
            GLib.timeout_add(200, lambda: send_inputs(channel) and False)
    elif event != S.ChannelEvent.CLOSED:
        print('error:%s:%s' % (name, event.value_nick), flush=True)
        finish(2)


def on_new(sess, channel):
    GObject.Object.connect(channel, 'channel-event', on_event)
    channel.connect()


GObject.Object.connect(session, 'channel-new', on_new)
session.connect()
GLib.timeout_add(15000, finish, 3)
loop.run()
session.disconnect()
sys.exit(result['code'])
