import AMLLocal
import ArgumentParser
import ChildProcess
import Foundation
import Logging
import MLHookCore
import MLHookServer
import Store

/// `mlhook init`: a starter configuration file, the embedded defaults spelled out with a comment on each part.
struct Init: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Write a starter configuration (the embedded defaults, commented) that config check accepts and serve runs."
  )
  @Option(name: .shortAndLong, help: "Where to write it.") var output = "mlhook.yaml"
  @Flag(help: "Replace the file if it exists.") var force = false

  func run() async throws {
    if FileManager.default.fileExists(atPath: output) && !force {
      printError("\(output) exists; pass --force to replace it")
      throw ExitCode(1)
    }
    do {
      try Self.starter.write(toFile: output, atomically: true, encoding: .utf8)
    } catch {
      printError("cannot write \(output): \(error.localizedDescription)")
      throw ExitCode(1)
    }
    print(
      """
      wrote \(output). Next:
        mlhook doctor --config \(output)        # is this machine ready to run it?
        mlhook serve --config \(output)         # then point GitHub's webhook at http://HOST:8080/hooks/github
        mlhook send github push --repo PATH --config \(output) --wait   # or try it with a local repository
      """)
  }

  /// The file `init` writes: what the embedded defaults run, minus the bundled sample's callback, as YAML a person
  /// edits. `InitDoctorTests` checks it passes `config check` and trains a push.
  static let starter = """
    # mlhook configuration, written by `mlhook init`: the embedded defaults, spelled out.
    # Check it: mlhook config check mlhook.yaml · run it: mlhook serve --config mlhook.yaml
    # Every key, with its default and a comment: config/mlhook.yaml in mlhook's source tree (and the README).

    server:
      listen: "127.0.0.1:8080"        # host:port; "0.0.0.0:8080" to take webhooks from other machines (put TLS in front)

    store:
      path: ".mlhook/mlhook.db"       # SQLite, every 2xx fsynced; store.postgres for several replicas

    azureml:
      mode: local                     # the embedded Azure-ML-compatible server runs the code on this machine;
      local:                          # mode: cloud with azureml.cloud (tenant, client, workspace) for Azure ML
        data_dir: ".mlhook/aml-local"
        confinement: required         # runs are sandboxed with bubblewrap, or aml-local does not start

    sources:
      - name: github                  # webhooks arrive at /hooks/github
        type: github
        # Generated at first start (mode 0600): paste it into the repository's webhook settings as the secret.
        secrets: [ { file: ".mlhook/secrets/github", create: true } ]
        git_schemes: [https, ssh, file]   # file: lets `mlhook send github push --repo PATH` train a local repository

    rules:
      - name: train
        when: { source: github, kind: push, branches: [main], paths: ["train/**"] }
        actions:
          # Azure ML v2: train/ becomes a code asset and the command runs as a command job; once it is Completed,
          # its outputs/model folder is registered as a version of my-model.
          - submit_job:
              experiment: "{{ repository.name | slug }}"
              dir: train
              command: "python train.py --commit {{ after | short }}"
              environment: "azureml:AzureML-sklearn-1.5@latest"
              compute: cpu-cluster
              register_model: my-model
        # Where the outcome goes (a signed POST, Standard Webhooks), once you have a receiver:
        # callback:
        #   - url: { url: "https://example.com/mlhook", secret: { env: CALLBACK_SECRET } }

    # The admin API (/api/v1, `mlhook … --server URL`) and the status page (/ui), with a token of 32+ characters:
    # admin:
    #   token: { env: MLHOOK_ADMIN_TOKEN }

    """
}

/// `mlhook doctor`: whether this machine can run a configuration, one line per check, exit 1 when one fails.
struct Doctor: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Check that this machine can run the configuration: bubblewrap confines runs, python and git run, secrets resolve, ports are free, the store opens."
  )
  @OptionGroup var options: ConfigOption

  struct Outcome {
    var lines: [String] = []
    var failed = 0
    var total = 0
    mutating func ok(_ what: String, _ text: String) { add("ok  ", what, text) }
    mutating func fail(_ what: String, _ text: String) {
      add("FAIL", what, text)
      failed += 1
    }
    mutating func note(_ what: String, _ text: String) {
      lines.append("--    \(what): \(text)")
      print(lines.last!)
    }
    private mutating func add(_ mark: String, _ what: String, _ text: String) {
      total += 1
      lines.append("\(mark)  \(what): \(text)")
      print(lines.last!)
    }
  }

  func run() async throws {
    let loaded = try options.load()
    let config = loaded.config
    let file = options.config ?? "<embedded defaults>"
    let environment = ProcessInfo.processInfo.environment
    var o = Outcome()
    o.ok(
      "configuration",
      "\(file): \(config.sources.count) source\(config.sources.count == 1 ? "" : "s"), \(config.rules.count) rule\(config.rules.count == 1 ? "" : "s")"
    )

    // Secrets: every reference resolves (a `create: true` file is made now, as serve would).
    var issues: [ConfigIssue] = []
    do {
      _ = try MLHookRuntime.resolveSources(
        config, logger: Logger(label: "mlhook.doctor"), environment: environment, file: file)
    } catch {
      issues += error.issues
    }
    do { try MLHookRuntime.checkSecrets(config, file: file, environment: environment) } catch {
      issues += error.issues
    }
    if issues.isEmpty {
      o.ok("secrets", "every secret resolves")
    } else {
      o.fail("secrets", issues.map(\.description).joined(separator: "; "))
    }

    // The sandbox and the interpreter, when this machine runs the code (the embedded aml-local).
    if config.azureml.mode == .local {
      let sandbox = SandboxDiagnosis.check()
      switch (config.azureml.localConfinement, sandbox.bubblewrap) {
      case (.off, _):
        o.note(
          "bubblewrap",
          "not used: azureml.local.confinement is off, so pushed code runs unconfined (trusted code only)"
        )
      case (_, let bwrap?):
        o.ok(
          "bubblewrap",
          "\(bwrap) confines runs (no capabilities, no_new_privs, seccomp, own namespaces)")
      case (let mode, nil):
        let problem = sandbox.problem ?? "bubblewrap does not work here"
        if mode == .required {
          o.fail("bubblewrap", "\(problem)")
        } else {
          o.fail("bubblewrap", "runs would NOT be confined (confinement: auto): \(problem)")
        }
      }
      let python = await Self.version(sandbox.interpreter, ["--version"], environment)
      if let python {
        o.ok("python", "\(sandbox.interpreter) (\(python))")
      } else {
        o.fail("python", "python3 does not run (aml-local runs scripts with it): install python3")
      }
    } else {
      o.note("bubblewrap", "not needed: azureml.mode is cloud (Azure ML runs the code)")
    }

    // git fetches the pushed commits.
    if let git = await Self.version("/usr/bin/env", ["git", "--version"], environment) {
      o.ok("git", git)
    } else {
      o.fail("git", "git does not run (it fetches pushed commits): install git")
    }

    // The addresses serve listens on.
    let server = config.server
    if let problem = ListenProbe.problem(host: server.host, port: server.port) {
      o.fail("listen", "\(server.host):\(server.port): \(problem)")
    } else {
      o.ok("listen", "\(server.host):\(server.port) is free")
    }
    if config.azureml.mode == .local && config.azureml.localPort != 0 {
      let (host, port) = (config.azureml.localHost, config.azureml.localPort)
      if let problem = ListenProbe.problem(host: host, port: port) {
        o.fail("aml-local listen", "\(host):\(port): \(problem)")
      } else {
        o.ok("aml-local listen", "\(host):\(port) is free")
      }
    }

    // The store opens (and, for SQLite, its folder takes writes).
    do {
      o.ok("store", try await Self.storeCheck(config))
    } catch {
      o.fail("store", "\(error)")
    }

    let summary =
      o.failed == 0 ? "all \(o.total) checks passed" : "\(o.failed) of \(o.total) checks failed"
    print("mlhook doctor: \(summary)")
    if o.failed > 0 { throw ExitCode(1) }
  }

  /// Whether the store opens (and, for SQLite, its folder takes writes). - Returns: what was found.
  static func storeCheck(_ config: MLHookConfig) async throws -> String {
    if case .sqlite(let sqlite) = config.store.backend {
      let folder = URL(fileURLWithPath: sqlite.path).deletingLastPathComponent().path
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      let probe = folder + "/.mlhook-doctor-\(getpid())"
      guard FileManager.default.createFile(atPath: probe, contents: Data("x".utf8)) else {
        throw Failure("cannot write in \(folder)")
      }
      try? FileManager.default.removeItem(atPath: probe)
      guard FileManager.default.fileExists(atPath: sqlite.path) else {
        return "\(sqlite.path) will be created (\(folder) takes writes)"
      }
    }
    let store = try await MLHookRuntime.openStore(
      config.store, mustExist: false, background: false, logger: Logger(label: "mlhook.doctor"))
    _ = try await store.list(limit: 1, source: nil)
    return "\(config.store) opens and reads"
  }

  struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
  }

  /// The first line a program prints, or nil when it does not run or fails.
  static func version(_ executable: String, _ arguments: [String], _ environment: [String: String])
    async -> String?
  {
    guard
      let (ended, output) = try? await ChildProcess.run(
        executable, arguments, environment: environment), ended == .exited(0)
    else { return nil }
    return output.split(separator: "\n").first.map {
      String($0).trimmingCharacters(in: .whitespaces)
    }
  }
}
