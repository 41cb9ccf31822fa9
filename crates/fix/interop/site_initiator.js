'use strict'
// A jspurefix (FIX 5.0 SP2 over FIXT.1.1, DefaultApplVerID 9) initiator against a real twinsite
// site's FIX gateway, driven by crates/site/tests/fix_interop.rs. It prints one line per step
// on stdout ("STEP ..."); the Rust test reads them, makes a binary participant trade against
// the resting orders, and asserts on what this initiator received.
//
// Usage:
//   node site_initiator.js first  <port> <private-key.pem> <comp> <password> <store-dir>
//     logon, order J1 (rests; the test fills 400 of it), cancel/replace J1 -> J2, cancel of an
//     unknown order (OrderCancelReject), cancel J2, order J4 (rests), then the process exits
//     without a Logout: a dropped connection. Prints "STEP dropped <lastSent> <lastReceived>".
//   node site_initiator.js second <port> <private-key.pem> <comp> <password> <store-dir> <lastReceived>
//     logon again with the sequence numbers of the first run (jspurefix's file session store
//     in <store-dir>; NextExpectedMsgSeqNum lastReceived + 1), expects the fill of J4 that was
//     generated while it was away (resent with PossDupFlag=Y), logs out.

require('reflect-metadata')
const path = require('path')
const fs = require('fs')
const crypto = require('crypto')
const { SessionLauncher } = require('jspurefix/dist/runtime')
const { AsciiSession } = require('jspurefix/dist/transport')

const [phase, portArg, keyPath, comp, password, storeDir, lastReceivedArg] = process.argv.slice(2)
const port = Number(portArg)
const jspurefixRoot = path.dirname(require.resolve('jspurefix/package.json'))
const publicKey = crypto.createPublicKey(fs.readFileSync(keyPath))

function step (text) {
  console.log(`STEP ${text}`)
}

function passwordTime (d) {
  const p = (n, w = 2) => String(n).padStart(w, '0')
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`
}

function encryptedPassword (pw) {
  const plaintext = Buffer.from(passwordTime(new Date()) + pw, 'ascii')
  return crypto.publicEncrypt(
    { key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, plaintext
  ).toString('base64')
}

const lastReceived = Number(lastReceivedArg || 0)
const encrypted = encryptedPassword(password)
const description = {
  application: {
    reconnectSeconds: 0,
    type: 'initiator',
    name: 'twinsite_site_interop',
    tcp: { host: '127.0.0.1', port },
    protocol: 'ascii',
    dictionary: path.join(jspurefixRoot, 'data', 'FIX50SP2.xml')
  },
  EncryptMethod: 0,
  ResetSeqNumFlag: false,
  HeartBtInt: 20,
  SenderCompId: comp,
  TargetCompID: 'HKEX',
  BeginString: 'FIXT.1.1',
  store: { type: 'file', directory: storeDir },
  Logon: {
    NextExpectedMsgSeqNum: lastReceived + 1,
    EncryptedPasswordMethod: 101,
    EncryptedPasswordLen: encrypted.length,
    EncryptedPassword: encrypted,
    DefaultApplVerID: '9'
  }
}

function order (clOrdId, side, price, qty) {
  return {
    ClOrdID: clOrdId,
    Instrument: { SecurityID: '5', SecurityIDSource: '8', SecurityExchange: 'XHKG' },
    Side: side,
    TransactTime: new Date(),
    OrderQtyData: { OrderQty: qty },
    OrdType: '2',
    Price: price
  }
}

function cancel (clOrdId, orig) {
  return {
    ClOrdID: clOrdId,
    OrigClOrdID: orig,
    Instrument: { SecurityID: '5', SecurityIDSource: '8', SecurityExchange: 'XHKG' },
    Side: '1',
    TransactTime: new Date()
  }
}

class SiteClient extends AsciiSession {
  constructor (config) {
    super(config)
    this.maxSent = 0
    this.maxReceived = lastReceived
    this.lastText = ''
    this.stage = 0
  }

  onDecoded (_msgType, txt) {
    this.lastText = txt
    const m = /(?:^|[|\x01])34=(\d+)/.exec(txt)
    if (m) this.maxReceived = Math.max(this.maxReceived, Number(m[1]))
  }

  onEncoded (_msgType, txt) {
    const m = /(?:^|[|\x01])34=(\d+)/.exec(txt)
    if (m) this.maxSent = Math.max(this.maxSent, Number(m[1]))
  }

  onReady (_view) {
    step('logged on')
    if (phase === 'first') {
      this.send('D', order('J1', '1', 65.3, 1200))
    }
  }

  onApplicationMsg (msgType, view) {
    const o = view.toObject()
    const possDup = /(?:^|[|\x01])43=Y/.test(this.lastText)
    if (msgType === '9') {
      step(`cancel-reject ${o.ClOrdID}`)
      this.send('F', cancel('J5', 'J2'))
      return
    }
    if (msgType !== '8') {
      step(`other ${msgType}`)
      return
    }
    step(`er ${o.ClOrdID} exec-type ${o.ExecType} status ${o.OrdStatus} last ${o.LastQty || 0} cum ${o.CumQty} leaves ${o.LeavesQty} possdup ${possDup ? 'Y' : 'N'}`)
    if (phase === 'second') {
      if (o.ClOrdID === 'J4' && o.ExecType === 'F') {
        this.done()
      }
      return
    }
    switch (`${o.ClOrdID} ${o.ExecType}`) {
      case 'J1 0':
        step('rested J1')
        break
      case 'J1 F':
        this.send('G', { ...order('J2', '1', 65.25, 1200), OrigClOrdID: 'J1' })
        break
      case 'J2 5':
        this.send('F', cancel('J3', 'NOPE'))
        break
      case 'J5 4':
        this.send('D', order('J4', '1', 65.25, 400))
        break
      case 'J4 0':
        // Give the transmitter a moment to flush, then vanish without a Logout.
        setTimeout(() => {
          step(`dropped ${this.maxSent} ${this.maxReceived}`)
          process.exit(0)
        }, 200)
        break
    }
  }

  onLogon (_view, _user, _password) {
    return true
  }

  onStopped () {
    step('stopped')
    process.exit(0)
  }
}

class Launcher extends SessionLauncher {
  constructor () {
    super(description, null)
  }

  makeFactory (_config) {
    return { makeSession: (sessionConfig) => new SiteClient(sessionConfig) }
  }
}

setTimeout(() => {
  console.error('interop run timed out')
  process.exit(2)
}, 30000).unref()
new Launcher().exec()
