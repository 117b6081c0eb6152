import Foundation
import Testing
import PostgresWire

@Suite struct ConnectionStringURITests {
    @Test func parsesEveryPartOfAURI() throws {
        let config = try ConnectionConfiguration.parse(
            "postgres://alice:s%40cr%3At@db.example.com:6543/app%20db?sslmode=verify-full&application_name=ferry&connect_timeout=10&options=-c%20statement_timeout%3D0")
        #expect(config.endpoints == [.init(host: "db.example.com", port: 6543)])
        #expect(config.user == "alice")
        #expect(config.password == "s@cr:t")
        #expect(config.database == "app db")
        #expect(config.sslMode == .verifyFull)
        #expect(config.applicationName == "ferry")
        #expect(config.connectTimeout == .seconds(10))
        #expect(config.options == "-c statement_timeout=0")
        #expect(config.channelBinding == .prefer)
        #expect(config.effectivePassword == "s@cr:t")
    }

    @Test func acceptsBothSchemesAndDefaultsEverything() throws {
        for uri in ["postgresql://", "postgres://"] {
            let config = try ConnectionConfiguration.parse(uri, environment: ["USER": "dev"])
            #expect(config.endpoints == [.init(host: "localhost", port: 5432)])
            #expect(config.user == "dev")
            #expect(config.database == "dev")
            #expect(config.password == nil)
            #expect(config.sslMode == .prefer)
            #expect(config.channelBinding == .prefer)
            #expect(config.targetSessionAttributes == .any)
            #expect(config.replication == nil)
        }
    }

    @Test func parsesIPv6AndMultipleHosts() throws {
        let config = try ConnectionConfiguration.parse("postgres://u@[::1]:5433,[fe80::1%25eth0],db2:5435/x")
        #expect(config.endpoints.map(\.host) == ["::1", "fe80::1%eth0", "db2"])
        #expect(config.endpoints.map(\.port) == [5433, 5432, 5435])
        #expect(config.host == "::1")
        #expect(config.port == 5433)
        #expect(config.endpoints[0].description == "[::1]:5433")
    }

    @Test func multipleHostsWithoutPorts() throws {
        let config = try ConnectionConfiguration.parse("postgresql://h1,h2:5434/db", environment: ["USER": "u"])
        #expect(config.endpoints.map(\.description) == ["h1:5432", "h2:5434"])
    }

    @Test func percentEncodedSocketDirectoryAsHost() throws {
        let config = try ConnectionConfiguration.parse("postgresql://%2Fvar%2Frun%2Fpostgresql:5433/db", environment: ["USER": "u"])
        #expect(config.host == "/var/run/postgresql")
        #expect(config.endpoints[0].isUnixSocket)
        #expect(config.endpoints[0].unixSocketPath == "/var/run/postgresql/.s.PGSQL.5433")
    }

    @Test func queryParametersOverrideAndComplete() throws {
        let config = try ConnectionConfiguration.parse("postgresql:///mydb?host=/tmp&port=5433&user=me", environment: ["USER": "other"])
        #expect(config.host == "/tmp")
        #expect(config.port == 5433)
        #expect(config.user == "me")
        #expect(config.database == "mydb")
    }

    @Test func sslTrueMeansRequire() throws {
        let config = try ConnectionConfiguration.parse("postgres://u@h/db?ssl=true")
        #expect(config.sslMode == .require)
        #expect(throws: ConnectionStringError.self) { try ConnectionConfiguration.parse("postgres://u@h/db?ssl=false") }
    }

    @Test func passwordWithAtSignAndEmptyPassword() throws {
        // libpq wants @ percent-encoded; the last @ splits userinfo from hosts, so this works too.
        let config = try ConnectionConfiguration.parse("postgres://u:p@ss@h/db")
        #expect(config.user == "u")
        #expect(config.password == "p@ss")
        #expect(config.host == "h")
        let empty = try ConnectionConfiguration.parse("postgres://u:@h/db")
        #expect(empty.password == nil)
    }

    @Test func rejectsMalformedURIs() {
        let cases: [(String, String)] = [
            ("postgres://u@[::1/db", "host"),
            ("postgres://u@[::1]x/db", "host"),
            ("postgres://u@h/db?sslmode", "sslmode"),
            ("postgres://u@h/db?sslmode=a=b", "sslmode"),
            ("postgres://u@h/d%zzb", "dbname"),
            ("postgres://u@h/d%0", "dbname"),
            ("postgres://u@h/d%00b", "dbname"),
            ("postgres://u@h/d%ffb", "dbname"),
        ]
        for (uri, field) in cases {
            #expect(throws: ConnectionStringError.self, "\(uri)") {
                try ConnectionConfiguration.parse(uri)
            }
            do {
                _ = try ConnectionConfiguration.parse(uri)
            } catch {
                #expect(error.code == .syntax, "\(uri)")
                #expect(error.field == field, "\(uri): \(error)")
            }
        }
    }
}

@Suite struct ConnectionStringKeyValueTests {
    @Test func parsesQuotedValuesEscapesAndSpacesAroundEquals() throws {
        let config = try ConnectionConfiguration.parse(#"host = db.internal  port=5433 dbname='my db' password='it\'s \\ secret' user=bob application_name=a\ b"#)
        #expect(config.host == "db.internal")
        #expect(config.port == 5433)
        #expect(config.database == "my db")
        #expect(config.password == #"it's \ secret"#)
        #expect(config.user == "bob")
        #expect(config.applicationName == "a b")
    }

    @Test func emptyStringAndEmptyQuotedValues() throws {
        let config = try ConnectionConfiguration.parse("", environment: ["USER": "x"])
        #expect(config.user == "x")
        let quoted = try ConnectionConfiguration.parse("user=x password=''")
        #expect(quoted.password == nil)
    }

    @Test func laterKeysOverrideEarlierOnes() throws {
        let config = try ConnectionConfiguration.parse("user=a user=b port=1 port=2")
        #expect(config.user == "b")
        #expect(config.port == 2)
    }

    @Test func multipleHostsHostaddrAndPorts() throws {
        let config = try ConnectionConfiguration.parse("host=h1,h2 hostaddr=10.0.0.1,10.0.0.2 port=5433,5434 user=u")
        #expect(config.endpoints == [
            .init(host: "h1", hostaddr: "10.0.0.1", port: 5433),
            .init(host: "h2", hostaddr: "10.0.0.2", port: 5434),
        ])
        let onePort = try ConnectionConfiguration.parse("host=h1,h2 port=6000 user=u")
        #expect(onePort.endpoints.map(\.port) == [6000, 6000])
        let addressOnly = try ConnectionConfiguration.parse("hostaddr=192.168.1.5 user=u")
        #expect(addressOnly.endpoints == [.init(host: "192.168.1.5", hostaddr: "192.168.1.5", port: 5432)])
    }

    @Test func mismatchedListsNameTheField() {
        #expect(throws: ConnectionStringError(code: .conflictingValues, field: "port", message: "2 hosts but 3 ports",
                                              fix: "give one port for all hosts, or one port per host in the same order")) {
            try ConnectionConfiguration.parse("host=a,b port=1,2,3 user=u")
        }
        do {
            _ = try ConnectionConfiguration.parse("host=a,b hostaddr=1.1.1.1 user=u")
            Issue.record("expected an error")
        } catch {
            #expect(error.field == "hostaddr")
        }
    }

    @Test func syntaxErrors() {
        for (text, field) in [("host", "host"), ("host localhost", "host"), ("= x", "connection string"), ("password='abc", "password")] {
            do {
                _ = try ConnectionConfiguration.parse(text)
                Issue.record("expected an error for \(text)")
            } catch {
                #expect(error.code == .syntax)
                #expect(error.field == field)
            }
        }
    }

    @Test func unterminatedPasswordQuoteDoesNotLeakThePassword() {
        do {
            _ = try ConnectionConfiguration.parse("user=u password='hunter2")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("unterminated"))
        }
    }

    @Test func replicationAndTargetSessionAttributes() throws {
        #expect(try ConnectionConfiguration.parse("user=u replication=database").replication == .database)
        #expect(try ConnectionConfiguration.parse("user=u replication=true").replication == .physical)
        #expect(try ConnectionConfiguration.parse("user=u replication=off").replication == nil)
        #expect(try ConnectionConfiguration.parse("user=u target_session_attrs=primary").targetSessionAttributes == .primary)
        #expect(try ConnectionConfiguration.parse("user=u target_session_attrs=prefer-standby").targetSessionAttributes == .preferStandby)
        #expect(throws: ConnectionStringError.self) { try ConnectionConfiguration.parse("user=u replication=logical") }
        #expect(throws: ConnectionStringError.self) { try ConnectionConfiguration.parse("user=u target_session_attrs=master") }
    }

    @Test func keepsOtherLibpqParameters() throws {
        let config = try ConnectionConfiguration.parse("user=u keepalives=1 sslsni=0 gssencmode=disable sslcert=/c.pem sslkey=/k.pem")
        #expect(config.otherParameters == ["keepalives": "1", "sslsni": "0", "gssencmode": "disable"])
        #expect(config.sslCertificate == "/c.pem")
        #expect(config.sslKey == "/k.pem")
    }

    @Test func connectTimeout() throws {
        #expect(try ConnectionConfiguration.parse("user=u connect_timeout=5").connectTimeout == .seconds(5))
        #expect(try ConnectionConfiguration.parse("user=u connect_timeout=0").connectTimeout == nil)
        #expect(try ConnectionConfiguration.parse("user=u connect_timeout=-3").connectTimeout == nil)
        do {
            _ = try ConnectionConfiguration.parse("user=u connect_timeout=5s")
            Issue.record("expected an error")
        } catch {
            #expect(error.field == "connect_timeout")
            #expect(error.code == .invalidValue)
        }
    }
}

@Suite struct ConnectionStringValidationTests {
    func error(_ text: String, environment: [String: String] = [:]) -> ConnectionStringError? {
        do {
            _ = try ConnectionConfiguration.parse(text, environment: environment)
            return nil
        } catch {
            return error
        }
    }

    @Test func unknownKeysSuggestTheRightOne() throws {
        let typo = try #require(error("user=u sslmdoe=require"))
        #expect(typo.code == .unknownParameter)
        #expect(typo.field == "sslmdoe")
        #expect(typo.fix.contains("sslmode"))
        let alias = try #require(error("user=u database=app"))
        #expect(alias.fix.contains("dbname"))
        let upper = try #require(error("user=u SSLMODE=require"))
        #expect(upper.fix.contains("lower case"))
        let nonsense = try #require(error("user=u frobnicate=1"))
        #expect(nonsense.fix.contains("host, hostaddr, port"))
        let inURI = try #require(error("postgres://u@h/db?sslmdoe=require"))
        #expect(inURI.field == "sslmdoe")
    }

    @Test func unsupportedKeysSayWhatToDo() throws {
        let service = try #require(error("service=prod"))
        #expect(service.code == .unsupportedParameter)
        #expect(service.field == "service")
        let requiressl = try #require(error("requiressl=1"))
        #expect(requiressl.fix.contains("sslmode=require"))
    }

    @Test func badSSLModeNamesTheFieldAndTheFix() throws {
        let bad = try #require(error("user=u sslmode=strict"))
        #expect(bad.code == .invalidValue)
        #expect(bad.field == "sslmode")
        #expect(bad.message.contains("\"strict\""))
        #expect(bad.message.contains("verify-full"))
        #expect(bad.description.contains("sslmode"))
        let fromEnvironment = try #require(error("user=u", environment: ["PGSSLMODE": "on"]))
        #expect(fromEnvironment.field == "sslmode")
        #expect(fromEnvironment.message.contains("PGSSLMODE"))
    }

    @Test(arguments: ["abc", "0", "70000", "-1", "5432x", "１２３"])
    func badPortsAreRejected(_ port: String) throws {
        let bad = try #require(error("user=u port=\(port)"))
        #expect(bad.field == "port")
        #expect(bad.fix.contains("1 to 65535"))
    }

    @Test func badPortFromEnvironmentSaysSo() throws {
        let bad = try #require(error("user=u", environment: ["PGPORT": "x"]))
        #expect(bad.field == "port")
        #expect(bad.message.contains("PGPORT"))
    }

    @Test func channelBindingRequireNeedsTLS() throws {
        let bad = try #require(error("user=u sslmode=disable channel_binding=require"))
        #expect(bad.code == .conflictingValues)
        #expect(bad.field == "channel_binding")
        #expect(bad.fix.contains("sslmode=require"))
        let ok = try ConnectionConfiguration.parse("user=u sslmode=require channel_binding=require")
        #expect(ok.channelBinding == .require)
        let invalid = try #require(error("user=u channel_binding=always"))
        #expect(invalid.field == "channel_binding")
    }

    @Test func sslRootCertSystemForcesVerifyFull() throws {
        let config = try ConnectionConfiguration.parse("user=u sslrootcert=system")
        #expect(config.sslRootCertificate == .system)
        #expect(config.sslMode == .verifyFull)
        #expect(config.verifiesCertificateChain)
        let weak = try #require(error("user=u sslrootcert=system sslmode=verify-ca"))
        #expect(weak.field == "sslmode")
        #expect(weak.fix.contains("verify-full"))
        let file = try ConnectionConfiguration.parse("user=u sslrootcert=/etc/ca.pem sslmode=require")
        #expect(file.sslRootCertificate == .file("/etc/ca.pem"))
        #expect(file.verifiesCertificateChain)
        #expect(try !ConnectionConfiguration.parse("user=u sslmode=require").verifiesCertificateChain)
    }

    @Test func everySSLModeParses() throws {
        for mode in ConnectionConfiguration.SSLMode.allCases {
            #expect(try ConnectionConfiguration.parse("user=u sslmode=\(mode.rawValue)").sslMode == mode)
        }
        #expect(ConnectionConfiguration.SSLMode.require.requiresTLS)
        #expect(!ConnectionConfiguration.SSLMode.prefer.requiresTLS)
        #expect(ConnectionConfiguration.SSLMode.allow.triesPlaintextFirst)
    }

    @Test func missingUserIsAnError() throws {
        let missing = try #require(error(""))
        #expect(missing.code == .missingValue)
        #expect(missing.field == "user")
        #expect(missing.fix.contains("PGUSER"))
    }

    @Test func nulInAValueIsRejected() throws {
        let bad = try #require(error("user=u application_name=a\u{0}b"))
        #expect(bad.field == "application_name")
    }
}

@Suite struct ConnectionStringEnvironmentTests {
    @Test func fallsBackToEveryPGVariable() throws {
        let environment = [
            "PGHOST": "envhost", "PGHOSTADDR": "10.1.2.3", "PGPORT": "6000", "PGDATABASE": "envdb", "PGUSER": "envuser",
            "PGPASSWORD": "envpass", "PGPASSFILE": "/etc/pgpass", "PGSSLMODE": "require", "PGSSLROOTCERT": "/ca.pem",
            "PGSSLCERT": "/cert.pem", "PGSSLKEY": "/key.pem", "PGCHANNELBINDING": "require", "PGAPPNAME": "envapp",
            "PGOPTIONS": "-c work_mem=64MB", "PGCONNECT_TIMEOUT": "7", "PGTARGETSESSIONATTRS": "read-write",
            "PGSSLNEGOTIATION": "direct",
        ]
        let config = try ConnectionConfiguration.parse("", environment: environment)
        #expect(config.endpoints == [.init(host: "envhost", hostaddr: "10.1.2.3", port: 6000)])
        #expect(config.database == "envdb")
        #expect(config.user == "envuser")
        #expect(config.password == "envpass")
        #expect(config.passfile == "/etc/pgpass")
        #expect(config.passwordFileStatus == .notConsulted)
        #expect(config.sslMode == .require)
        #expect(config.sslRootCertificate == .file("/ca.pem"))
        #expect(config.sslCertificate == "/cert.pem")
        #expect(config.sslKey == "/key.pem")
        #expect(config.channelBinding == .require)
        #expect(config.applicationName == "envapp")
        #expect(config.options == "-c work_mem=64MB")
        #expect(config.connectTimeout == .seconds(7))
        #expect(config.targetSessionAttributes == .readWrite)
        #expect(config.otherParameters == ["sslnegotiation": "direct"])
    }

    @Test func theConnectionStringWinsOverTheEnvironment() throws {
        let environment = ["PGHOST": "envhost", "PGPORT": "6000", "PGUSER": "envuser", "PGSSLMODE": "disable", "PGAPPNAME": "envapp"]
        let config = try ConnectionConfiguration.parse("postgres://me@db:5433/x?sslmode=verify-ca", environment: environment)
        #expect(config.host == "db")
        #expect(config.port == 5433)
        #expect(config.user == "me")
        #expect(config.sslMode == .verifyCA)
        #expect(config.applicationName == "envapp")
    }

    @Test func userFallsBackToUSERThenTheSystemName() throws {
        #expect(try ConnectionConfiguration.parse("", environment: ["USER": "a", "LOGNAME": "b"]).user == "a")
        #expect(try ConnectionConfiguration.parse("", environment: ["LOGNAME": "b"]).user == "b")
        let system = try ConnectionConfiguration.parse("", environment: [:], systemUserName: "sys")
        #expect(system.user == "sys")
        #expect(system.database == "sys")
    }

    @Test func emptyEnvironmentValuesCountAsUnset() throws {
        let config = try ConnectionConfiguration.parse("", environment: ["PGHOST": "", "PGPORT": "", "PGUSER": "u", "PGSSLMODE": ""])
        #expect(config.host == "localhost")
        #expect(config.port == 5432)
        #expect(config.sslMode == .prefer)
    }

    @Test func anEmptyExplicitValueBlocksTheEnvironmentLikeLibpq() throws {
        let config = try ConnectionConfiguration.parse("user=u host='' sslmode=''", environment: ["PGHOST": "envhost", "PGSSLMODE": "disable"])
        #expect(config.host == "localhost")
        #expect(config.sslMode == .prefer)
    }

    @Test func fallbackApplicationName() throws {
        #expect(try ConnectionConfiguration.parse("user=u fallback_application_name=fb").applicationName == "fb")
        #expect(try ConnectionConfiguration.parse("user=u fallback_application_name=fb", environment: ["PGAPPNAME": "env"]).applicationName == "env")
    }
}

@Suite struct ConnectionStringRedactionTests {
    @Test func descriptionNeverShowsThePassword() throws {
        let config = try ConnectionConfiguration.parse("postgres://alice:hunter2@db:5433/app?sslmode=require&sslpassword=keypass")
        for text in [config.description, config.redactedDescription, config.debugDescription, "\(config)", String(reflecting: config)] {
            #expect(!text.contains("hunter2"))
            #expect(!text.contains("keypass"))
            #expect(text.contains("password=****"))
        }
        var dumped = ""
        dump(config, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        #expect(config.description == "host=db port=5433 user=alice password=**** dbname=app sslmode=require channel_binding=prefer sslpassword=****")
    }

    @Test func descriptionQuotesAndRoundTrips() throws {
        let config = try ConnectionConfiguration.parse("user=u dbname='my db' application_name='it\\'s'")
        #expect(config.description.contains("dbname='my db'"))
        #expect(config.description.contains(#"application_name='it\'s'"#))
        let reparsed = try ConnectionConfiguration.parse(config.description)
        #expect(reparsed == config)
    }

    @Test func passwordFromTheFileIsRedactedToo() throws {
        let config = try ConnectionConfiguration.parse("host=db user=u", environment: ["HOME": "/home/u"],
                                                       passwordFile: .contents("*:*:*:*:filepass\n"))
        #expect(config.effectivePassword == "filepass")
        #expect(!config.description.contains("filepass"))
        #expect(config.description.contains("password=****"))
        var dumped = ""
        dump(config.endpoints, to: &dumped)
        #expect(!dumped.contains("filepass"))
    }

    @Test func noPasswordNoStars() throws {
        let config = try ConnectionConfiguration.parse("host=db user=u")
        #expect(!config.description.contains("password"))
    }

    @Test func badPercentEncodingInThePasswordDoesNotEchoIt() {
        do {
            _ = try ConnectionConfiguration.parse("postgres://u:sec%zzret@h/db")
            Issue.record("expected an error")
        } catch {
            #expect(error.field == "password")
            #expect(!error.description.contains("sec"))
        }
    }
}
