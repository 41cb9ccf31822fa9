'use strict'
// A jspurefix (FIX 5.0 SP2 / FIXT.1.1) initiator for twinsite's interop acceptor:
// logs on with the OCG-C encrypted password (RSA PKCS#1 v1.5 of UTC YYYYMMDDHHMMSS + password,
// base64, test key from ../testdata), sends one NewOrderSingle, waits for the ExecutionReport,
// logs out. Exit code 0 on success.
//
// Usage: node initiator.js [port]   (default 9880; see run.sh)

require('reflect-metadata')
const path = require('path')
const fs = require('fs')
const crypto = require('crypto')
const { SessionLauncher } = require('jspurefix/dist/runtime')
const { AsciiSession } = require('jspurefix/dist/transport')

const port = Number(process.argv[2] || 9880)
const jspurefixRoot = path.dirname(require.resolve('jspurefix/package.json'))
const publicKey = fs.readFileSync(path.join(__dirname, '..', 'testdata', 'test-rsa-2048.pub.pem'))

function passwordTime (d) {
  const p = (n, w = 2) => String(n).padStart(w, '0')
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`
}

function encryptedPassword (password) {
  const plaintext = Buffer.from(passwordTime(new Date()) + password, 'ascii')
  return crypto.publicEncrypt(
    { key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, plaintext
  ).toString('base64')
}

const encrypted = encryptedPassword('abcd1234')
const description = {
  application: {
    reconnectSeconds: 10,
    type: 'initiator',
    name: 'twinsite_interop_client',
    tcp: { host: '127.0.0.1', port },
    protocol: 'ascii',
    dictionary: path.join(jspurefixRoot, 'data', 'FIX50SP2.xml')
  },
  EncryptMethod: 0,
  ResetSeqNumFlag: false,
  HeartBtInt: 20,
  SenderCompId: 'BROKER01',
  TargetCompID: 'HKEX',
  BeginString: 'FIXT.1.1',
  Logon: {
    NextExpectedMsgSeqNum: 1,
    EncryptedPasswordMethod: 101,
    EncryptedPasswordLen: encrypted.length,
    EncryptedPassword: encrypted,
    DefaultApplVerID: '9'
  }
}

let executionReports = 0

class InteropClient extends AsciiSession {
  constructor (config) {
    super(config)
    this.logReceivedMsgs = true
  }

  onApplicationMsg (msgType, view) {
    console.log(`received ${msgType} ${JSON.stringify(view.toObject())}`)
    if (msgType === '8') {
      executionReports++
      this.done()
    }
  }

  onReady (_view) {
    console.log('logged on; sending NewOrderSingle')
    this.send('D', {
      ClOrdID: '1',
      Instrument: { SecurityID: '5', SecurityIDSource: '8', SecurityExchange: 'XHKG' },
      Side: '1',
      TransactTime: new Date(),
      OrderQtyData: { OrderQty: 400 },
      OrdType: '2',
      Price: 38.5
    })
  }

  onLogon (_view, _user, _password) {
    return true
  }

  onStopped () {
    console.log(`stopped; execution reports received: ${executionReports}`)
    process.exit(executionReports > 0 ? 0 : 1)
  }

  onDecoded (_msgType, txt) {
    console.log(`in  ${txt}`)
  }

  onEncoded (_msgType, txt) {
    console.log(`out ${txt}`)
  }
}

class Launcher extends SessionLauncher {
  constructor () {
    super(description, null)
  }

  makeFactory (_config) {
    return { makeSession: (sessionConfig) => new InteropClient(sessionConfig) }
  }
}

setTimeout(() => {
  console.error('interop run timed out')
  process.exit(2)
}, 30000).unref()
new Launcher().exec()
