import Foundation

extension MLHookConfig {
    /// The embedded defaults listening on `port` (the sample callback points at the same port).
    public static func embeddedDefaults(port: Int) -> String {
        """
        server: { listen: "127.0.0.1:\(port)" }
        store: { path: ".mlhook/mlhook.db" }
        sources:
          - name: github
            type: github
            secrets: [ { file: ".mlhook/secrets/github", create: true } ]
            git_schemes: [https, ssh, file]   # the sample pushes a repository on this machine
        rules:
          - name: sample-train
            when: { source: github, kind: push, repository: ["mlhook/sample", "local/*"], branches: [main], paths: ["train/**"] }
            actions:
              # Azure ML v2: the train folder becomes a code asset, the command runs as a command job, and once it is
              # Completed its outputs/model folder is registered as a version of sample-model.
              - submit_job: { experiment: sample, dir: train, command: "python train.py --commit {{ after | short }}", environment: "azureml:AzureML-sklearn-1.5@latest", compute: cpu-cluster, register_model: sample-model }
            callback:
              - url: { url: "http://127.0.0.1:\(port)/sample/callback", secret: { file: ".mlhook/secrets/sample-callback", create: true } }
        """
    }
}
