//! The workload shorthand → Deployment (+ Service when it has ports).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::ApiResource;
use serde_json::Value;

use super::{Identity, RenderedObject};
use crate::api::{Protocol, Workload};

pub(super) fn render(
    w: &Workload,
    id: &Identity<'_>,
    env_vars: &BTreeMap<String, String>,
    progress_deadline_seconds: i32,
) -> Vec<RenderedObject> {
    let meta = ObjectMeta {
        name: Some(id.app.to_string()),
        namespace: Some(id.namespace.to_string()),
        labels: Some(id.labels()),
        ..ObjectMeta::default()
    };
    let mut env = w.env.clone();
    // Environment settings win over the build's defaults of the same name.
    for (name, value) in id.builtin_variables().iter().chain(env_vars) {
        env.retain(|e| &e.name != name);
        env.push(EnvVar { name: name.clone(), value: Some(value.clone()), value_from: None });
    }
    let ports: Vec<ContainerPort> = w
        .ports
        .iter()
        .map(|p| ContainerPort {
            name: Some(p.name.clone()),
            container_port: p.container_port,
            // SSA keys container ports by (containerPort, protocol): always send protocol.
            protocol: Some(p.protocol.unwrap_or_default().as_str().to_string()),
            ..ContainerPort::default()
        })
        .collect();
    let container = Container {
        name: id.app.to_string(),
        image: Some(w.image.clone()),
        ports: (!ports.is_empty()).then_some(ports),
        env: Some(env),
        command: w.command.clone(),
        args: w.args.clone(),
        resources: w.resources.clone(),
        readiness_probe: w.readiness_probe.clone(),
        liveness_probe: w.liveness_probe.clone(),
        ..Container::default()
    };
    let deployment = Deployment {
        metadata: meta.clone(),
        spec: Some(DeploymentSpec {
            replicas: w.replicas,
            progress_deadline_seconds: Some(progress_deadline_seconds),
            selector: LabelSelector { match_labels: Some(id.selector_labels()), match_expressions: None },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(id.labels()),
                    annotations: (!w.pod_annotations.is_empty()).then(|| w.pod_annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec { containers: vec![container], ..PodSpec::default() }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    let mut out = vec![typed_object::<Deployment>(id.app, &deployment)];
    if !w.ports.is_empty() {
        let service = Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                selector: Some(id.selector_labels()),
                ports: Some(
                    w.ports
                        .iter()
                        .map(|p| ServicePort {
                            name: Some(p.name.clone()),
                            port: p.service_port.unwrap_or(p.container_port),
                            target_port: Some(IntOrString::String(p.name.clone())),
                            protocol: Some(p.protocol.unwrap_or(Protocol::Tcp).as_str().to_string()),
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            status: None,
        };
        out.push(typed_object::<Service>(id.app, &service));
    }
    out
}

fn typed_object<K>(name: &str, obj: &K) -> RenderedObject
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize,
{
    let resource = ApiResource::erase::<K>(&());
    let mut body = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        map.insert("apiVersion".into(), Value::String(resource.api_version.clone()));
        map.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    RenderedObject { resource, name: name.to_string(), body }
}
